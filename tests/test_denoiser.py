"""Denoiser adapters on tiny random models saved to disk and loaded like real checkpoints."""

from __future__ import annotations

import json
import time

import pytest
import torch

from engine.denoiser import (
    Denoiser,
    HFMaskedLMDenoiser,
    ModelLoadError,
    TrustRemoteCodeDenoiser,
    bert_chat_prompt,
    build_prompt_ids,
    forbidden_token_ids,
    load_denoiser,
)
from engine.draft import canvas_text
from engine.families import LLADA, special_ids
from engine.model_budget import ModelTooLargeError
from engine.sampler import Canvas, SamplerSettings, pack_batch, step
from engine.testmodels import (
    STUB_MASK_ID,
    build_remote_code_stub,
    build_tiny_bert,
    build_tiny_modernbert,
    train_tiny_tokenizer,
)

HOW_TO_PROVIDE = "--model /path/to/folder"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> HFMaskedLMDenoiser:
    return HFMaskedLMDenoiser(build_tiny_bert(tmp_path_factory.mktemp("bert")), device="cpu")


@pytest.fixture(scope="module")
def tiny_modernbert(tmp_path_factory) -> HFMaskedLMDenoiser:
    folder = build_tiny_modernbert(tmp_path_factory.mktemp("modernbert"))
    return HFMaskedLMDenoiser(folder, device="cpu")


@pytest.fixture(params=["tiny_bert", "tiny_modernbert"])
def denoiser(request) -> HFMaskedLMDenoiser:
    return request.getfixturevalue(request.param)


def ragged_batch(denoiser: Denoiser, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded prompts of different lengths, each followed by masks, with attention masks."""
    rng = torch.Generator().manual_seed(0)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), denoiser.tokenizer.pad_token_id)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(5, 300, (length,), generator=rng)
        input_ids[row, length // 2 : length] = denoiser.mask_token_id
        attention_mask[row, :length] = 1
    return input_ids, attention_mask


def test_adapter_satisfies_the_protocol(denoiser):
    assert isinstance(denoiser, Denoiser)
    assert denoiser.device == torch.device("cpu")
    assert denoiser.max_length == 512
    assert denoiser.tokenizer.convert_ids_to_tokens(denoiser.mask_token_id) == "[MASK]"


def test_logits_at_positions_equal_full_model_logits(denoiser):
    input_ids, attention_mask = ragged_batch(denoiser, [23, 9, 16])
    positions = input_ids == denoiser.mask_token_id
    positions[0, 0] = True  # a non-mask position too
    selected = denoiser.logits(input_ids, attention_mask, positions)
    with torch.inference_mode():
        full = denoiser.model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert selected.shape == (int(positions.sum()), denoiser.vocab_size)
    torch.testing.assert_close(selected, full[positions], rtol=1e-5, atol=1e-5)


def test_unknown_architecture_falls_back_to_full_logits(tiny_bert, monkeypatch):
    input_ids, attention_mask = ragged_batch(tiny_bert, [12, 7])
    positions = input_ids == tiny_bert.mask_token_id
    split = tiny_bert.logits(input_ids, attention_mask, positions)
    monkeypatch.setattr(tiny_bert, "_split", None)
    torch.testing.assert_close(tiny_bert.logits(input_ids, attention_mask, positions), split)


def test_prompt_uses_the_bert_chat_format_without_a_chat_template(denoiser):
    tokenizer = denoiser.tokenizer
    assert not tokenizer.chat_template
    ids = build_prompt_ids(tokenizer, "Be precise.", "Draft a termination clause.")
    text = "[SYS]\nBe precise.\n[/SYS]\n\n[Question]\nDraft a termination clause.\n[/Question]\n\n"
    assert bert_chat_prompt("Be precise.", "Draft a termination clause.") == text + "[Answer]\n"
    assert ids == tokenizer(text + "[Answer]\n", add_special_tokens=False)["input_ids"]
    without_system = build_prompt_ids(tokenizer, None, "Hi")
    decoded = "".join(tokenizer.decode(without_system).split()).lower()
    assert decoded == "[question]hi[/question][answer]"


def test_prompt_uses_the_chat_template_when_there_is_one(tiny_modernbert, monkeypatch):
    tokenizer = tiny_modernbert.tokenizer
    template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    monkeypatch.setattr(tokenizer, "chat_template", template)
    ids = build_prompt_ids(tokenizer, "Be precise.", "Draft.")
    assert tokenizer.decode(ids) == "<system>Be precise.</system><user>Draft.</user><assistant>"


def test_bert_chat_padding_ends_a_section_and_stays_proposable(tiny_bert):
    tokenizer = tiny_bert.tokenizer
    assert tiny_bert.end_ids == (tokenizer.pad_token_id,)  # dllm uses [PAD] as BERT's EOS
    forbidden = forbidden_token_ids(
        tokenizer, len(tokenizer) + 3, tiny_bert.mask_token_id, tiny_bert.end_ids
    )
    assert tokenizer.pad_token_id not in forbidden
    for token_id in (tokenizer.mask_token_id, tokenizer.cls_token_id, tokenizer.unk_token_id):
        assert token_id in forbidden
    assert {len(tokenizer), len(tokenizer) + 2} <= set(forbidden.tolist())


def test_end_of_turn_special_tokens_stay_proposable():
    tokenizer = train_tiny_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|eot_id|>", "<|start_header_id|>"]}
    )
    ids = special_ids(LLADA, {"mask_token_id": 7}, tokenizer)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert ids.mask == 7 and eot in ids.ends  # config first; the family's end token looked up
    forbidden = forbidden_token_ids(tokenizer, len(tokenizer), ids.mask, ids.ends).tolist()
    assert eot not in forbidden
    assert tokenizer.convert_tokens_to_ids("<|start_header_id|>") in forbidden


def test_denoising_a_ragged_batch_end_to_end(denoiser):
    """The contract between `Denoiser.logits` and `sampler.step`: rows in canvas order."""
    tokenizer = denoiser.tokenizer
    prompts = [build_prompt_ids(tokenizer, None, "Draft a clause."), [tokenizer.cls_token_id]]
    forbidden = forbidden_token_ids(
        tokenizer, denoiser.vocab_size, denoiser.mask_token_id, denoiser.end_ids
    )

    def draft(seed: int) -> list[Canvas]:
        generator = torch.Generator().manual_seed(seed)
        canvases = [
            Canvas.empty(12, denoiser.mask_token_id),
            Canvas.empty(5, denoiser.mask_token_id),
        ]
        for i in range(4):
            input_ids, attention_mask, positions = pack_batch(
                prompts, canvases, tokenizer.pad_token_id
            )
            logits = denoiser.logits(input_ids, attention_mask, positions)
            canvases = step(
                canvases,
                logits,
                steps_left=[4 - i] * 2,
                step_index=[i] * 2,
                settings=SamplerSettings(temperature=1.0),
                forbidden=forbidden,
                generator=generator,
            )
        return canvases

    first, again = draft(0), draft(0)
    assert all(c.n_masked == 0 for c in first)
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    assert not torch.isin(torch.cat([c.tokens for c in first]), forbidden).any()
    assert all(isinstance(canvas_text(tokenizer, c, show_masks=False), str) for c in first)


def test_missing_folder_gives_the_clear_message(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder") as error:
        load_denoiser(tmp_path / "nowhere")
    assert HOW_TO_PROVIDE in str(error.value)


@pytest.mark.parametrize(
    "files",
    [
        {"config.json": "{ this is not json"},
        {"config.json": '{"model_type": "bert"}'},
        {"config.json": '{"model_type": "gpt2"}'},
        {},
    ],
    ids=["garbage-config", "no-weights", "not-a-diffusion-family", "empty-folder"],
)
def test_broken_folder_gives_the_clear_message(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ModelLoadError) as error:
        load_denoiser(tmp_path)
    assert HOW_TO_PROVIDE in str(error.value) and str(tmp_path) in str(error.value)


def test_offline_hub_id_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE") as error:
        load_denoiser("palimpsest-tests/no-such-model")
    assert time.monotonic() - start < 5
    assert HOW_TO_PROVIDE in str(error.value)


def test_unknown_hub_id_fails_fast_without_offline_flag(monkeypatch):
    """Online: the hub says no such model; no network: the probe fails. Either way, quickly."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="hub cannot provide it") as error:
        load_denoiser("palimpsest-tests/no-such-model")
    assert time.monotonic() - start < 10
    assert HOW_TO_PROVIDE in str(error.value)


def test_remote_code_model_takes_its_mask_id_from_config_and_unshifted_logits(tmp_path):
    denoiser = load_denoiser(build_remote_code_stub(tmp_path / "stub"), device="cpu")
    assert isinstance(denoiser, TrustRemoteCodeDenoiser) and isinstance(denoiser, Denoiser)
    assert denoiser.mask_token_id == STUB_MASK_ID and denoiser.tokenizer.mask_token is None
    mask = STUB_MASK_ID
    input_ids = torch.tensor([[5, 6, mask, mask], [7, mask, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    positions = input_ids == mask
    logits = denoiser.logits(input_ids, attention_mask, positions)
    with torch.inference_mode():
        full = denoiser.model(input_ids).logits
    torch.testing.assert_close(logits, full[positions])


def test_a_model_too_large_for_this_machine_is_refused_before_any_weights_load(tmp_path):
    """An LLaDA-8B-shaped config made ten times deeper: no machine like this one holds it; the
    folder has no weights at all, so reaching them would fail differently."""
    config = {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "d_model": 4096,
        "n_heads": 32,
        "n_kv_heads": 32,
        "n_layers": 320,
        "mlp_hidden_size": 12288,
        "vocab_size": 126464,
        "embedding_size": 126464,
        "max_sequence_length": 4096,
        "mask_token_id": 126336,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelTooLargeError, match=r"needs about [\d.]+ GiB") as error:
        load_denoiser(tmp_path, device="cpu")
    assert "available" in str(error.value)
