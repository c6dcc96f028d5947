"""Our Dream implementation against tiny checkpoints in the published on-disk layout.

The reference here is a plain re-implementation of the authors' forward pass, written from their
`modeling_dream.py` and the call their sampler makes (`generation_utils.py`): position ids
`cumsum(mask) - 1` with padding set to 1, a [B, 1, L, L] mask that is the outer product of the
attention mask, eager softmax attention with repeated key/value heads, float32 RMSNorm and
rotary tables, and the one-position logit shift. It reads the state dict straight from the
safetensors files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from dream_checkpoints import (
    ENDOFTEXT_ID,
    IM_END_ID,
    IM_START_ID,
    MASK_ID,
    TINY_DREAM_CONFIG,
    VOCAB_SIZE,
    write_dream_checkpoint,
)
from safetensors.torch import load_file
from torch import Tensor

from engine.architectures.dream import (
    DreamConfig,
    DreamModel,
    is_dream_config,
    load_dream,
    load_dream_tokenizer,
)

CPU = torch.device("cpu")
TOLERANCE = 1e-5

# Two rows, right-padded: 11 and 7 real tokens, masks inside both.
TOKENS = [
    [5, 70, MASK_ID, 200, 3, MASK_ID, MASK_ID, 17, IM_END_ID, 99, MASK_ID],
    [IM_START_ID, 42, MASK_ID, 8, MASK_ID, 150, MASK_ID],
]


def _padded_batch() -> tuple[Tensor, Tensor]:
    length = max(len(row) for row in TOKENS)
    ids = torch.full((len(TOKENS), length), ENDOFTEXT_ID)
    mask = torch.zeros((len(TOKENS), length), dtype=torch.long)
    for i, row in enumerate(TOKENS):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dream_checkpoint(tmp_path_factory.mktemp("dream"), seed=1)


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> DreamModel:
    return load_dream(checkpoint, dtype=torch.float32, device=CPU)


# --- the independent reference -------------------------------------------------------------


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return weight * (x.float() * torch.rsqrt(variance + eps)).to(x.dtype)


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _reference_logits(state: dict[str, Tensor], ids: Tensor, mask: Tensor) -> Tensor:
    """Shifted logits [B, L, V] following the authors' modelling and sampling code."""
    cfg = TINY_DREAM_CONFIG
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg["hidden_size"] // heads
    batch, length = ids.shape
    eps = cfg["rms_norm_eps"]
    position_ids = mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(mask == 0, 1)
    pair_mask = torch.logical_and(mask[:, None, None, :].bool(), mask[:, None, :, None].bool())
    bias = torch.zeros(pair_mask.shape).masked_fill(~pair_mask, float("-inf"))

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = (inv_freq[None, :, None] @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]

    x = state["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms_norm(x, state[p + "input_layernorm.weight"], eps)

        def project(name: str, n_heads: int, h: Tensor = h, p: str = p) -> Tensor:
            out = h @ state[p + f"self_attn.{name}.weight"].T + state[p + f"self_attn.{name}.bias"]
            return out.view(batch, length, n_heads, head_dim).transpose(1, 2)

        q, k, v = project("q_proj", heads), project("k_proj", kv_heads), project("v_proj", kv_heads)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        groups = heads // kv_heads
        k = k[:, :, None].expand(batch, kv_heads, groups, length, head_dim).reshape(q.shape)
        v = v[:, :, None].expand(batch, kv_heads, groups, length, head_dim).reshape(q.shape)
        scores = q @ k.transpose(2, 3) / math.sqrt(head_dim) + bias
        attn = torch.nan_to_num(torch.softmax(scores, dim=-1)) @ v  # padded rows: all masked
        attn = attn.transpose(1, 2).reshape(batch, length, -1)
        x = x + attn @ state[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, state[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(h @ state[p + "mlp.gate_proj.weight"].T)
        x = (
            x
            + (gate * (h @ state[p + "mlp.up_proj.weight"].T)) @ state[p + "mlp.down_proj.weight"].T
        )
    logits = _rms_norm(x, state["model.norm.weight"], eps) @ state["lm_head.weight"].T
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def _state(folder: Path) -> dict[str, Tensor]:
    return {name: t.float() for name, t in load_file(str(folder / "model.safetensors")).items()}


# --- tests -----------------------------------------------------------------------------------


def test_matches_reference_forward_with_padding(checkpoint: Path, model: DreamModel) -> None:
    ids, mask = _padded_batch()
    expected = _reference_logits(_state(checkpoint), ids, mask)[mask.bool()]
    ours = model.logits(ids, mask, mask.bool())
    assert ours.shape == (int(mask.sum()), VOCAB_SIZE)
    assert (ours - expected).abs().max().item() < TOLERANCE


def test_masked_positions_in_row_major_order(checkpoint: Path, model: DreamModel) -> None:
    ids, mask = _padded_batch()
    masked = ids == MASK_ID
    expected = _reference_logits(_state(checkpoint), ids, mask)[masked]
    assert (model.logits(ids, mask, masked) - expected).abs().max().item() < TOLERANCE


def test_padded_batch_equals_each_row_alone(model: DreamModel) -> None:
    ids, mask = _padded_batch()
    batched = model.logits(ids, mask, ids == MASK_ID)
    alone = torch.cat(
        [model.logits(torch.tensor([row]), None, torch.tensor([row]) == MASK_ID) for row in TOKENS]
    )
    assert (batched - alone).abs().max().item() < TOLERANCE


def test_logits_are_shifted_by_one(model: DreamModel) -> None:
    ids = torch.tensor([TOKENS[0]])
    all_positions = model.head(model(ids))[0]
    everywhere = model.logits(ids, None, torch.ones_like(ids, dtype=torch.bool))
    assert torch.allclose(everywhere[0], all_positions[0], atol=TOLERANCE)  # position 0: its own
    assert torch.allclose(everywhere[1:], all_positions[:-1], atol=TOLERANCE)


def test_attention_is_bidirectional(model: DreamModel) -> None:
    ids = torch.tensor([TOKENS[0]])
    changed = ids.clone()
    changed[0, -1] = 7
    first = torch.zeros_like(ids, dtype=torch.bool)
    first[0, 1] = True  # read from the hidden state at 0, which must see the last token
    assert not torch.allclose(model.logits(ids, None, first), model.logits(changed, None, first))


def test_sharded_checkpoint_loads_the_same(tmp_path: Path, model: DreamModel) -> None:
    sharded = write_dream_checkpoint(tmp_path, seed=1, shards=3)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
    ids, mask = _padded_batch()
    reloaded = load_dream(sharded, dtype=torch.float32, device=CPU)
    assert torch.equal(
        reloaded.logits(ids, mask, mask.bool()), model.logits(ids, mask, mask.bool())
    )


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    folder = write_dream_checkpoint(tmp_path, drop=("model.layers.1.self_attn.k_proj.bias",))
    with pytest.raises(ValueError, match=r"missing tensors: model\.layers\.1\.self_attn\.k_proj"):
        load_dream(folder, dtype=torch.float32, device=CPU)


def test_unexpected_tensor_is_named(tmp_path: Path) -> None:
    folder = write_dream_checkpoint(tmp_path)
    config = TINY_DREAM_CONFIG | {"num_hidden_layers": 1}  # the weights have two layers
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unexpected tensors: model\.layers\.1\."):
        load_dream(folder, dtype=torch.float32, device=CPU)


def test_tied_checkpoint_uses_the_embedding_as_head(tmp_path: Path) -> None:
    folder = write_dream_checkpoint(tmp_path, config_overrides={"tie_word_embeddings": True})
    tied = load_dream(folder, dtype=torch.float32, device=CPU)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    hidden = torch.randn(3, TINY_DREAM_CONFIG["hidden_size"])
    assert torch.allclose(tied.head(hidden), hidden @ tied.model.embed_tokens.weight.T)


def test_dtype_device_and_eval(checkpoint: Path) -> None:
    loaded = load_dream(checkpoint, dtype=torch.bfloat16, device=CPU)
    assert not loaded.training
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad or p.is_meta for p in loaded.parameters())
    ids, mask = _padded_batch()
    assert torch.isfinite(loaded.logits(ids, mask, mask.bool()).float()).all()


def test_config_reads_the_published_keys() -> None:
    config = DreamConfig.from_dict(TINY_DREAM_CONFIG)
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads) == (
        64,
        4,
        2,
    )
    assert (config.head_dim, config.rope_theta, config.rms_norm_eps) == (16, 1e6, 1e-6)
    assert (config.mask_token_id, config.pad_token_id, config.eos_token_id) == (
        MASK_ID,
        ENDOFTEXT_ID,
        ENDOFTEXT_ID,
    )
    assert not config.tie_word_embeddings
    resaved = {k: v for k, v in TINY_DREAM_CONFIG.items() if k != "rope_theta"}
    resaved["rope_parameters"] = {"rope_type": "default", "rope_theta": 5e5}  # transformers 5
    assert DreamConfig.from_dict(resaved).rope_theta == 5e5
    with pytest.raises(ValueError, match="rope_scaling type 'yarn'"):
        DreamConfig.from_dict(TINY_DREAM_CONFIG | {"rope_scaling": {"type": "yarn", "factor": 4}})


def test_is_dream_config() -> None:
    assert is_dream_config(TINY_DREAM_CONFIG)
    assert is_dream_config({"model_type": "dream"})
    assert not is_dream_config(TINY_DREAM_CONFIG | {"architectures": ["DreamForCausalLM"]})
    assert not is_dream_config({"model_type": "llada", "architectures": ["LLaDAModelLM"]})


def test_tokenizer_loads_without_remote_code(checkpoint: Path) -> None:
    tokenizer = load_dream_tokenizer(checkpoint)  # tokenization_dream.py raises if imported
    assert tokenizer.mask_token == "<|mask|>" and tokenizer.mask_token_id == MASK_ID
    assert tokenizer.eos_token_id == ENDOFTEXT_ID and tokenizer.pad_token_id == ENDOFTEXT_ID
    ids = tokenizer("the cat<|mask|><|im_end|>", add_special_tokens=True).input_ids
    assert ids[-2:] == [MASK_ID, IM_END_ID]  # special tokens stay whole, nothing is prepended
    assert tokenizer.decode(ids) == "the cat<|mask|><|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_config_mask_id_wins_over_the_tokenizer(checkpoint: Path, tmp_path: Path) -> None:
    folder = write_dream_checkpoint(tmp_path, config_overrides={"mask_token_id": IM_START_ID})
    assert load_dream_tokenizer(folder).mask_token_id == IM_START_ID
