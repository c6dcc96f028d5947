"""SDAR and the exact block-causal KV cache, on tiny checkpoints in the published layout.

The reference is a plain re-implementation of the authors' forward pass (JetAstra/SDAR
`modeling_sdar.py` with the mask `generate.py` builds): Qwen3 layers with q/k RMSNorm before
rotate-half RoPE, eager softmax attention with repeated key/value heads under
`tril(ones(blocks, blocks))` repeated `block_size` times from position 0, float32 RMSNorm that
multiplies by the weight before casting, and no logit shift. It reads the safetensors directly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sdar_checkpoints import (
    BLOCK_SIZE,
    ENDOFTEXT_ID,
    IM_END_ID,
    IM_START_ID,
    MASK_ID,
    TINY_SDAR_CONFIG,
    VOCAB_SIZE,
    write_sdar_checkpoint,
)
from torch import Tensor

from engine.architectures.sdar import (
    SDARModel,
    is_sdar_config,
    load_sdar,
    load_sdar_tokenizer,
    read_sdar_config,
)
from engine.block_causal import SDAR, BlockCausalDenoiser
from engine.denoiser import Denoiser
from engine.sampler import Canvas, SamplerSettings, pack_batch, step

CPU = torch.device("cpu")
TOLERANCE = 1e-5
PROMPTS = [
    [IM_START_ID, 117, 115, 101, 114, 10, 116, 257, 261, 97],  # 10 tokens: ends mid-block
    [IM_START_ID, 42, 8, 150, 99, 10, 200],  # 7 tokens
]
CANVASES = [14, 13]  # rows of 24 and 20 tokens


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sdar_checkpoint(tmp_path_factory.mktemp("sdar") / "SDAR-tiny-Chat")


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> SDARModel:
    return load_sdar(checkpoint, dtype=torch.float32, device=CPU)


@pytest.fixture()
def denoiser(checkpoint: Path) -> BlockCausalDenoiser:
    return BlockCausalDenoiser(checkpoint, device="cpu", dtype=torch.float32)


def _state(folder: Path) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        state |= {name: t.float() for name, t in load_file(path).items()}
    return state


def reference_logits(folder: Path, ids: Tensor, attention_mask: Tensor) -> Tensor:
    """[B, L, V] logits of the authors' block-causal forward, written out by hand."""
    config, s = TINY_SDAR_CONFIG, _state(folder)
    heads, kv_heads, dim = config["num_attention_heads"], config["num_key_value_heads"], 32
    batch, length = ids.shape
    eps = config["rms_norm_eps"]

    def rms(t: Tensor, weight: Tensor) -> Tensor:
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * weight

    def rotate(t: Tensor) -> Tensor:
        return torch.cat((-t[..., dim // 2 :], t[..., : dim // 2]), dim=-1)

    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    angles = torch.outer(torch.arange(length).float(), inv_freq)
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    blocks = torch.arange(length) // config["block_size"]
    allowed = (blocks[None, :] <= blocks[:, None])[None] & attention_mask.bool()[:, None, :]
    x = s["model.embed_tokens.weight"][ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, s[p + "input_layernorm.weight"])
        q = (h @ s[p + "self_attn.q_proj.weight"].T).view(batch, length, heads, dim)
        k = (h @ s[p + "self_attn.k_proj.weight"].T).view(batch, length, kv_heads, dim)
        v = (h @ s[p + "self_attn.v_proj.weight"].T).view(batch, length, kv_heads, dim)
        q, k = rms(q, s[p + "self_attn.q_norm.weight"]), rms(k, s[p + "self_attn.k_norm.weight"])
        q = q * cos[:, None] + rotate(q) * sin[:, None]
        k = k * cos[:, None] + rotate(k) * sin[:, None]
        k, v = (t.repeat_interleave(heads // kv_heads, dim=2) for t in (k, v))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dim)
        weights = scores.masked_fill(~allowed[:, None], float("-inf")).softmax(-1)
        out = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, -1)
        x = x + out @ s[p + "self_attn.o_proj.weight"].T
        h = rms(x, s[p + "post_attention_layernorm.weight"])
        gate, up = h @ s[p + "mlp.gate_proj.weight"].T, h @ s[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ s[p + "mlp.down_proj.weight"].T
    return rms(x, s["model.norm.weight"]) @ s["lm_head.weight"].T


def _batch(rows: list[list[int]]) -> tuple[Tensor, Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), ENDOFTEXT_ID)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _rows() -> list[list[int]]:
    return [p + [MASK_ID] * n for p, n in zip(PROMPTS, CANVASES, strict=True)]


def _current_block(ids: Tensor, mask: Tensor) -> Tensor:
    """[B, L] bool: the masks of each row's first block (absolute) that still holds one."""
    positions = torch.zeros_like(ids, dtype=torch.bool)
    for b in range(ids.shape[0]):
        masked = ((ids[b] == MASK_ID) & mask[b].bool()).nonzero().squeeze(1)
        if masked.numel():
            start = int(masked[0]) // BLOCK_SIZE * BLOCK_SIZE
            inside = (torch.arange(ids.shape[1]) >= start) & (
                torch.arange(ids.shape[1]) < start + BLOCK_SIZE
            )
            positions[b] = inside & (ids[b] == MASK_ID) & mask[b].bool()
    return positions


def _commit_most_confident(ids: Tensor, positions: Tensor, logits: Tensor) -> Tensor:
    """Commit the argmax at the most confident position of each row's candidates."""
    ids = ids.clone()
    probs = logits.softmax(-1)
    confidence, tokens = probs.max(-1)
    offset = 0
    for b in range(ids.shape[0]):
        columns = positions[b].nonzero().squeeze(1)
        if columns.numel():
            best = int(confidence[offset : offset + len(columns)].argmax())
            ids[b, columns[best]] = int(tokens[offset + best])
            offset += len(columns)
    return ids


# ---------------------------------------------------------------------------------------------
# Config, loading, tokenizer


def test_config_is_recognised_and_read(checkpoint: Path) -> None:
    assert is_sdar_config(TINY_SDAR_CONFIG) and SDAR.matches(TINY_SDAR_CONFIG)
    assert not is_sdar_config({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]})
    assert not is_sdar_config({"model_type": "Dream", "architectures": ["DreamModel"]})
    config = read_sdar_config(checkpoint)
    assert (config.head_dim, config.block_size, config.mask_token_id) == (32, 4, MASK_ID)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": ("model.layers.1.self_attn.k_norm.weight",)}, "missing tensors"),
        ({"extra": {"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(16)}}, "unexpected"),
        ({"config_overrides": {"head_dim": 16}}, "wrong shapes"),
    ],
)
def test_loading_is_strict(tmp_path: Path, change: dict, message: str) -> None:
    folder = write_sdar_checkpoint(tmp_path / "bad", **{k: v for k, v in change.items()})
    if "config_overrides" in change:  # weights written for head_dim 16, config back to 32
        (folder / "config.json").write_text(
            (folder / "config.json").read_text().replace('"head_dim": 16', '"head_dim": 32')
        )
    with pytest.raises(ValueError, match=message):
        load_sdar(folder, dtype=torch.float32, device=CPU)


def test_single_file_and_shards_load_the_same(tmp_path: Path, model: SDARModel) -> None:
    single = load_sdar(
        write_sdar_checkpoint(tmp_path / "one", shards=1), dtype=torch.float32, device=CPU
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, single.state_dict()[name]), name


def test_tokenizer_without_remote_code(checkpoint: Path) -> None:
    tokenizer = load_sdar_tokenizer(checkpoint)  # the tokenization_qwen2.py stub would raise
    assert tokenizer.mask_token_id == MASK_ID and tokenizer.eos_token_id == ENDOFTEXT_ID
    text = "<|im_start|>user\nthe cat<|MASK|><|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == IM_START_ID and ids[-2:] == [MASK_ID, IM_END_ID]


def test_denoiser_protocol_and_ids(denoiser: BlockCausalDenoiser) -> None:
    assert isinstance(denoiser, Denoiser)
    assert denoiser.family is SDAR and denoiser.block_size == BLOCK_SIZE
    assert denoiser.mask_token_id == MASK_ID and denoiser.pad_token_id == ENDOFTEXT_ID
    assert set(denoiser.end_ids) == {ENDOFTEXT_ID, IM_END_ID}
    assert denoiser.vocab_size == VOCAB_SIZE and denoiser.max_length == 512
    assert denoiser.context_cache is None and denoiser.int8 is False


# ---------------------------------------------------------------------------------------------
# The forward pass


def test_forward_matches_the_reference(checkpoint: Path, model: SDARModel) -> None:
    ids, mask = _batch(_rows())
    ids[0, 12] = 77  # some committed canvas tokens, not only masks
    expected = reference_logits(checkpoint, ids, mask)
    with torch.inference_mode():
        ours = model.head(model(ids, mask))
    for b, row in enumerate(_rows()):
        n = len(row)
        assert (ours[b, :n] - expected[b, :n]).abs().max() < TOLERANCE
        with torch.inference_mode():
            alone = model.head(model(ids[b : b + 1, :n]))
        assert (alone[0] - expected[b, :n]).abs().max() < TOLERANCE


def test_blocks_do_not_see_later_blocks(model: SDARModel) -> None:
    ids, _ = _batch(_rows()[:1])
    changed = ids.clone()
    changed[0, 16:] = 5  # blocks 4 and 5
    with torch.inference_mode():
        before, after = model(ids), model(changed)
    assert torch.equal(before[0, :16], after[0, :16])
    assert not torch.allclose(before[0, 12:16], after[0, 16:20])


# ---------------------------------------------------------------------------------------------
# The cache


def test_cached_logits_equal_the_full_pass_block_after_block(
    denoiser: BlockCausalDenoiser, model: SDARModel
) -> None:
    """Each call runs only the blocks after the cached prefix: the current block, plus the block
    just finished, whose final keys and values are computed once (the authors' `store_kv`)."""
    ids, mask = _batch(_rows())
    lengths = [len(row) for row in _rows()]
    cached_upto = [0, 0]
    steps, worst = 0, 0.0
    while (positions := _current_block(ids, mask)).any():
        before = denoiser.forwarded_tokens
        cached = denoiser.logits(ids, mask, positions)
        with torch.inference_mode():
            full = model.logits(ids, mask, positions)
        worst = max(worst, float((cached - full).abs().max()))
        starts = [
            int(p.nonzero()[0]) // BLOCK_SIZE * BLOCK_SIZE if p.any() else 0 for p in positions
        ]
        expected = sum(
            min(n, s + BLOCK_SIZE) - c
            for n, s, c, p in zip(lengths, starts, cached_upto, positions, strict=True)
            if p.any()  # a finished row is no longer asked about
        )
        assert denoiser.forwarded_tokens - before == expected
        assert steps == 0 or expected <= 2 * BLOCK_SIZE * len(PROMPTS)
        cached_upto = starts
        ids = _commit_most_confident(ids, positions, cached)
        steps += 1
    assert steps == max(CANVASES) and worst < TOLERANCE
    full_cost = sum(len(r) for r in _rows()) * steps
    assert denoiser.forwarded_tokens < full_cost / 4


def test_windows_across_a_block_boundary(denoiser: BlockCausalDenoiser, model: SDARModel) -> None:
    """A sampler sub-block counted from the canvas start (10..13) spans model blocks 2 and 3."""
    ids, mask = _batch(_rows())
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[0, 10:14] = True
    positions[1, 7:11] = True
    cached = denoiser.logits(ids, mask, positions)
    with torch.inference_mode():
        assert (cached - model.logits(ids, mask, positions)).abs().max() < TOLERANCE
    assert denoiser.cache.cache.lengths.tolist() == [8, 4]


def test_an_edit_recomputes_from_the_changed_block(
    denoiser: BlockCausalDenoiser, model: SDARModel
) -> None:
    ids, mask = _batch(_rows())
    ids[:, 10:20] = torch.arange(10, 20)  # blocks up to 4 committed in both rows
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[0, 20] = positions[1, 19] = True
    denoiser.logits(ids, mask, positions)
    ids[0, 13] = 3  # an edit inside block 3 of row 0
    before = denoiser.forwarded_tokens
    cached = denoiser.logits(ids, mask, positions)
    assert denoiser.forwarded_tokens - before == (24 - 12) + (20 - 16)  # row 1: its last block
    with torch.inference_mode():
        assert (cached - model.logits(ids, mask, positions)).abs().max() < TOLERANCE


def test_rows_are_matched_by_content_and_dropped_when_unseen(
    denoiser: BlockCausalDenoiser, model: SDARModel
) -> None:
    rows = _rows()
    ids, mask = _batch(rows)
    positions = _current_block(ids, mask)
    denoiser.logits(ids, mask, positions)
    swapped = [1, 0]  # the same rows in the other order: found by content, nothing recomputed
    before = denoiser.forwarded_tokens
    cached = denoiser.logits(ids[swapped], mask[swapped], positions[swapped])
    assert denoiser.forwarded_tokens - before == 4 + 4
    with torch.inference_mode():
        full = model.logits(ids[swapped], mask[swapped], positions[swapped])
    assert (cached - full).abs().max() < TOLERANCE
    denoiser.logits(ids[1:], mask[1:], positions[1:])  # row 0 is not seen: evicted
    assert len(denoiser.cache.prefixes) == 1
    before = denoiser.forwarded_tokens
    denoiser.logits(ids, mask, positions)
    assert denoiser.forwarded_tokens - before == (8 + 4) + 4


def test_the_engine_sampler_commits_the_same_with_and_without_the_cache(
    denoiser: BlockCausalDenoiser, model: SDARModel
) -> None:
    prompts = [PROMPTS[0][:8], PROMPTS[1][:4]]  # whole blocks: sampler windows align
    settings = SamplerSettings(sub_block=BLOCK_SIZE)
    runs = []
    for logits_of in (denoiser.logits, model.logits):
        canvases = [Canvas.empty(12, MASK_ID, denoiser.end_ids) for _ in prompts]
        for index in range(12):
            ids, mask, positions = pack_batch(prompts, canvases, ENDOFTEXT_ID, BLOCK_SIZE)
            with torch.inference_mode():
                logits = logits_of(ids, mask, positions)
            left = BLOCK_SIZE - index % BLOCK_SIZE
            canvases = step(
                canvases, logits, steps_left=[left] * 2, step_index=[index] * 2, settings=settings
            )
        runs.append([c.tokens.tolist() for c in canvases])
    assert runs[0] == runs[1]


def test_tied_embeddings_and_attention_bias(tmp_path: Path) -> None:
    """SDAR-1.7B follows Qwen3-1.7B (tied head, no lm_head tensor); biases on all four
    projections when `attention_bias`."""
    folder = write_sdar_checkpoint(
        tmp_path / "tied", config_overrides={"tie_word_embeddings": True, "attention_bias": True}
    )
    tied = load_sdar(folder, dtype=torch.float32, device=CPU)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert tied.model.layers[0].self_attn.o_proj.bias is not None
