"""SDAR, Fast-dLLM v2 and the exact block-causal KV cache, on tiny checkpoints in the published
layouts (tests/sdar_checkpoints.py, tests/fast_dllm_v2_checkpoints.py).

The reference is a plain re-implementation of the authors' forward passes (JetAstra/SDAR
`modeling_sdar.py` with the mask `generate.py` builds; Fast-dLLM v2's `modeling.py` with its
`eval_block_diff_mask`), reading the safetensors directly: Qwen layers (q/k RMSNorm before RoPE
when the checkpoint has them, biases where it has them) with rotate-half RoPE over absolute
positions, eager softmax attention with repeated key/value heads under `tril(ones(blocks,
blocks))` repeated `block_size` times from position 0, float32 throughout. SDAR reads the logit
for position i at i; Fast-dLLM v2 at i - 1 (its token shift).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fast_dllm_v2_checkpoints as fast
import pytest
import sdar_checkpoints as sdar
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from engine.architectures.block_causal_lm import BlockCausalLM
from engine.architectures.fast_dllm_v2 import (
    is_fast_dllm_v2_config,
    load_fast_dllm_v2,
    load_fast_dllm_v2_tokenizer,
)
from engine.architectures.sdar import is_sdar_config, load_sdar, load_sdar_tokenizer
from engine.block_causal import FAST_DLLM_V2, SDAR, BlockCausalDenoiser, block_causal_family
from engine.denoiser import Denoiser, ModelLoadError
from engine.families import Family
from engine.sampler import Canvas, SamplerSettings, pack_batch, step

CPU = torch.device("cpu")
TOLERANCE = 1e-5
BLOCK = 4  # both tiny checkpoints use blocks of 4
PROMPT_TOKENS = [
    [117, 115, 101, 114, 10, 116, 257, 261, 97],  # + the start token: 10, ends mid-block
    [42, 8, 150, 99, 10, 200],  # 7 tokens
]
CANVASES = [14, 13]  # rows of 24 and 20 tokens


@dataclass(frozen=True)
class Case:
    name: str
    family: Family
    write: Callable[..., Path]
    load: Callable[..., BlockCausalLM]
    load_tokenizer: Callable
    is_config: Callable[[dict], bool]
    config: dict
    mask_id: int
    pad_id: int
    end_ids: frozenset[int]
    start_id: int
    shift: int

    @property
    def prompts(self) -> list[list[int]]:
        return [[self.start_id, *tokens] for tokens in PROMPT_TOKENS]

    def rows(self) -> list[list[int]]:
        return [p + [self.mask_id] * n for p, n in zip(self.prompts, CANVASES, strict=True)]


CASES = {
    "sdar": Case(
        "sdar",
        SDAR,
        sdar.write_sdar_checkpoint,
        load_sdar,
        load_sdar_tokenizer,
        is_sdar_config,
        sdar.TINY_SDAR_CONFIG,
        sdar.MASK_ID,
        sdar.ENDOFTEXT_ID,
        frozenset({sdar.ENDOFTEXT_ID, sdar.IM_END_ID}),
        sdar.IM_START_ID,
        0,
    ),
    "fast_dllm_v2": Case(
        "fast_dllm_v2",
        FAST_DLLM_V2,
        fast.write_fast_dllm_v2_checkpoint,
        load_fast_dllm_v2,
        load_fast_dllm_v2_tokenizer,
        is_fast_dllm_v2_config,
        fast.TINY_FAST_DLLM_V2_CONFIG,
        fast.MASK_ID,
        fast.IM_END_ID,  # config.json pad_token_id
        frozenset({fast.IM_END_ID}),
        fast.IM_START_ID,
        1,
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture(scope="module")
def checkpoint(case: Case, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return case.write(tmp_path_factory.mktemp(case.name) / "tiny")


@pytest.fixture(scope="module")
def model(case: Case, checkpoint: Path) -> BlockCausalLM:
    return case.load(checkpoint, dtype=torch.float32, device=CPU)


@pytest.fixture()
def denoiser(checkpoint: Path) -> BlockCausalDenoiser:
    return BlockCausalDenoiser(checkpoint, device="cpu", dtype=torch.float32)


def reference_logits(folder: Path, config: dict, ids: Tensor, attention_mask: Tensor) -> Tensor:
    """[B, L, V] unshifted logits (the LM head at every position) of the authors' block-causal
    forward, written out by hand from the state dict."""
    s: dict[str, Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        s |= {name: t.float() for name, t in load_file(path).items()}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    dim = config.get("head_dim") or config["hidden_size"] // heads
    block = config.get("block_size") or config["bd_size"]
    batch, length = ids.shape
    eps = config["rms_norm_eps"]

    def rms(t: Tensor, weight: Tensor) -> Tensor:
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * weight

    def linear(t: Tensor, name: str) -> Tensor:
        return t @ s[name + ".weight"].T + s.get(name + ".bias", 0)

    def rotate(t: Tensor) -> Tensor:
        return torch.cat((-t[..., dim // 2 :], t[..., : dim // 2]), dim=-1)

    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    angles = torch.outer(torch.arange(length).float(), inv_freq)
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    blocks = torch.arange(length) // block
    allowed = (blocks[None, :] <= blocks[:, None])[None] & attention_mask.bool()[:, None, :]
    x = s["model.embed_tokens.weight"][ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, s[p + "input_layernorm.weight"])
        q = linear(h, p + "self_attn.q_proj").view(batch, length, heads, dim)
        k = linear(h, p + "self_attn.k_proj").view(batch, length, kv_heads, dim)
        v = linear(h, p + "self_attn.v_proj").view(batch, length, kv_heads, dim)
        if p + "self_attn.q_norm.weight" in s:
            q = rms(q, s[p + "self_attn.q_norm.weight"])
            k = rms(k, s[p + "self_attn.k_norm.weight"])
        q = q * cos[:, None] + rotate(q) * sin[:, None]
        k = k * cos[:, None] + rotate(k) * sin[:, None]
        k, v = (t.repeat_interleave(heads // kv_heads, dim=2) for t in (k, v))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dim)
        weights = scores.masked_fill(~allowed[:, None], float("-inf")).softmax(-1)
        out = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, -1)
        x = x + linear(out, p + "self_attn.o_proj")
        h = rms(x, s[p + "post_attention_layernorm.weight"])
        gate, up = h @ s[p + "mlp.gate_proj.weight"].T, h @ s[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ s[p + "mlp.down_proj.weight"].T
    return rms(x, s["model.norm.weight"]) @ s["lm_head.weight"].T


def _batch(rows: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _current_block(ids: Tensor, mask: Tensor, mask_id: int) -> Tensor:
    """[B, L] bool: the masks of each row's first block (absolute) that still holds one."""
    positions = torch.zeros_like(ids, dtype=torch.bool)
    columns = torch.arange(ids.shape[1])
    for b in range(ids.shape[0]):
        open_masks = (ids[b] == mask_id) & mask[b].bool()
        if open_masks.any():
            start = int(open_masks.nonzero()[0]) // BLOCK * BLOCK
            positions[b] = open_masks & (columns >= start) & (columns < start + BLOCK)
    return positions


def _commit_most_confident(ids: Tensor, positions: Tensor, logits: Tensor) -> Tensor:
    """Commit the argmax at the most confident position of each row's candidates."""
    ids = ids.clone()
    confidence, tokens = logits.softmax(-1).max(-1)
    offset = 0
    for b in range(ids.shape[0]):
        columns = positions[b].nonzero().squeeze(1)
        if columns.numel():
            best = int(confidence[offset : offset + len(columns)].argmax())
            ids[b, columns[best]] = int(tokens[offset + best])
            offset += len(columns)
    return ids


def _full(model: BlockCausalLM, ids: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
    with torch.inference_mode():
        return model.logits(ids, mask, positions)


# ---------------------------------------------------------------------------------------------
# Config, loading, tokenizer


def test_config_is_recognised(case: Case, checkpoint: Path) -> None:
    assert case.is_config(case.config) and case.family.matches(case.config)
    assert block_causal_family(case.config) is case.family
    other = CASES["sdar" if case.name != "sdar" else "fast_dllm_v2"]
    assert not case.is_config(other.config)
    for config in (
        {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]},
        {"model_type": "Dream", "architectures": ["DreamModel"]},
    ):
        assert not case.is_config(config) and block_causal_family(config) is None
    assert case.load(checkpoint, dtype=torch.float32, device=CPU).config.block_size == BLOCK


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": ("model.layers.1.self_attn.k_proj.weight",)}, "missing tensors"),
        ({"extra": {"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8)}}, "unexpected"),
        ({"config_overrides": {"intermediate_size": 96}}, "wrong shapes"),
    ],
)
def test_loading_is_strict(case: Case, tmp_path: Path, change: dict, message: str) -> None:
    folder = case.write(tmp_path / "bad", **change)
    if "config_overrides" in change:  # weights written for 96, config.json back to 128
        config = folder / "config.json"
        text = config.read_text().replace('"intermediate_size": 96', '"intermediate_size": 128')
        config.write_text(text)
    with pytest.raises(ValueError, match=message):
        case.load(folder, dtype=torch.float32, device=CPU)


def test_single_file_and_shards_load_the_same(
    case: Case, tmp_path: Path, model: BlockCausalLM
) -> None:
    single = case.load(case.write(tmp_path / "one", shards=1), dtype=torch.float32, device=CPU)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, single.state_dict()[name]), name


def test_tokenizer_without_remote_code(case: Case, checkpoint: Path) -> None:
    tokenizer = case.load_tokenizer(checkpoint)  # remote tokenizer code would raise
    assert tokenizer.mask_token_id == case.mask_id
    mask = tokenizer.convert_ids_to_tokens(case.mask_id)
    text = f"<|im_start|>user\nthe cat{mask}<|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == case.start_id and ids[-2] == case.mask_id
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_denoiser_protocol_and_ids(case: Case, denoiser: BlockCausalDenoiser) -> None:
    assert isinstance(denoiser, Denoiser)
    assert denoiser.family is case.family and denoiser.block_size == BLOCK
    assert denoiser.mask_token_id == case.mask_id and denoiser.pad_token_id == case.pad_id
    assert set(denoiser.end_ids) == case.end_ids
    assert denoiser.vocab_size == case.config["vocab_size"] and denoiser.max_length == 512
    assert denoiser.context_cache is None and denoiser.int8 is False


def test_the_denoiser_refuses_other_folders_with_one_message(case: Case, tmp_path: Path) -> None:
    broken = case.write(tmp_path / "broken", drop=("model.norm.weight",))
    with pytest.raises(ModelLoadError, match="missing tensors: model.norm.weight"):
        BlockCausalDenoiser(broken, device="cpu")
    other = case.write(tmp_path / "other")
    config = other / "config.json"
    config.write_text(
        config.read_text()
        .replace(case.config["model_type"], "qwen3")
        .replace(case.config["architectures"][0], "Qwen3ForCausalLM")
    )
    with pytest.raises(ModelLoadError, match="not SDAR or Fast-dLLM v2"):
        BlockCausalDenoiser(other, device="cpu")


# ---------------------------------------------------------------------------------------------
# The forward pass


def test_forward_matches_the_reference(case: Case, checkpoint: Path, model: BlockCausalLM) -> None:
    ids, mask = _batch(case.rows(), case.pad_id)
    ids[0, 12] = 77  # a committed canvas token among the masks
    expected = reference_logits(checkpoint, case.config, ids, mask)
    positions = mask.bool()
    with torch.inference_mode():
        ours = model.head(model(ids, mask))
        diffusion = model.logits(ids, mask, positions)
    rows, columns = positions.nonzero(as_tuple=True)
    shifted = expected[rows, (columns - case.shift).clamp(min=0)]
    assert (diffusion - shifted).abs().max() < TOLERANCE
    for b, row in enumerate(case.rows()):
        n = len(row)
        assert (ours[b, :n] - expected[b, :n]).abs().max() < TOLERANCE
        with torch.inference_mode():
            alone = model.head(model(ids[b : b + 1, :n]))
        assert (alone[0] - expected[b, :n]).abs().max() < TOLERANCE


def test_blocks_do_not_see_later_blocks(case: Case, model: BlockCausalLM) -> None:
    ids, _ = _batch(case.rows()[:1], case.pad_id)
    changed = ids.clone()
    changed[0, 16:] = 5  # blocks 4 and 5
    with torch.inference_mode():
        before, after = model(ids), model(changed)
    assert torch.equal(before[0, :16], after[0, :16])
    assert not torch.allclose(before[0, 16:20], after[0, 16:20])


# ---------------------------------------------------------------------------------------------
# The cache


def test_cached_logits_equal_the_full_pass_block_after_block(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    """Each call runs only the blocks after the cached prefix: the current block, plus the block
    just finished, whose final keys and values are computed once (the authors' `store_kv`)."""
    ids, mask = _batch(case.rows(), case.pad_id)
    lengths = [len(row) for row in case.rows()]
    cached_upto = [0, 0]
    steps, worst = 0, 0.0
    while (positions := _current_block(ids, mask, case.mask_id)).any():
        before = denoiser.forwarded_tokens
        cached = denoiser.logits(ids, mask, positions)
        worst = max(worst, float((cached - _full(model, ids, mask, positions)).abs().max()))
        starts = [int(p.nonzero()[0]) // BLOCK * BLOCK if p.any() else 0 for p in positions]
        expected = sum(
            min(n, s + BLOCK) - c
            for n, s, c, p in zip(lengths, starts, cached_upto, positions, strict=True)
            if p.any()  # a finished row is no longer asked about
        )
        assert denoiser.forwarded_tokens - before == expected
        assert steps == 0 or expected <= 2 * BLOCK * len(lengths)
        cached_upto = starts
        ids = _commit_most_confident(ids, positions, cached)
        steps += 1
    assert steps == max(CANVASES) and worst < TOLERANCE
    assert denoiser.forwarded_tokens < sum(lengths) * steps / 4


def test_windows_across_a_block_boundary(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    """A sampler sub-block counted from the canvas start (10..13) spans model blocks 2 and 3."""
    ids, mask = _batch(case.rows(), case.pad_id)
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[0, 10:14] = True
    positions[1, 7:11] = True
    cached = denoiser.logits(ids, mask, positions)
    assert (cached - _full(model, ids, mask, positions)).abs().max() < TOLERANCE
    assert denoiser.cache.cache.lengths.tolist() == [8, 4]


def test_an_edit_recomputes_from_the_changed_block(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    ids, mask = _batch(case.rows(), case.pad_id)
    ids[:, 10:20] = torch.arange(10, 20)  # blocks up to 4 committed in both rows
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[0, 20] = positions[1, 19] = True  # row 0: a block's first position
    denoiser.logits(ids, mask, positions)
    ids[0, 13] = 3  # an edit inside block 3 of row 0
    before = denoiser.forwarded_tokens
    cached = denoiser.logits(ids, mask, positions)
    assert denoiser.forwarded_tokens - before == (24 - 12) + (20 - 16)  # row 1: its last block
    assert (cached - _full(model, ids, mask, positions)).abs().max() < TOLERANCE


def test_rows_are_matched_by_content_and_dropped_when_unseen(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    ids, mask = _batch(case.rows(), case.pad_id)
    positions = _current_block(ids, mask, case.mask_id)
    denoiser.logits(ids, mask, positions)
    swapped = [1, 0]  # the same rows in the other order: found by content, nothing recomputed
    before = denoiser.forwarded_tokens
    cached = denoiser.logits(ids[swapped], mask[swapped], positions[swapped])
    assert denoiser.forwarded_tokens - before == 4 + 4
    full = _full(model, ids[swapped], mask[swapped], positions[swapped])
    assert (cached - full).abs().max() < TOLERANCE
    denoiser.logits(ids[1:], mask[1:], positions[1:])  # row 0 is not seen: evicted
    assert len(denoiser.cache.prefixes) == 1
    before = denoiser.forwarded_tokens
    denoiser.logits(ids, mask, positions)
    assert denoiser.forwarded_tokens - before == (8 + 4) + 4


def test_a_block_start_reuses_the_kept_final_state(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    """With a token shift, the first position of a block reads the hidden state before it: it
    is kept with the prefix, so the block before is not recomputed at every step."""
    ids, mask = _batch(case.rows(), case.pad_id)
    ids[:, 10:16] = 9  # both rows: blocks up to 3 committed, block 4 (16..19) all masks
    positions = torch.zeros_like(ids, dtype=torch.bool)
    positions[:, 16:20] = True
    denoiser.logits(ids, mask, positions)
    for column in (17, 19, 18):
        ids[:, column] = 11
        positions[:, column] = False
        before = denoiser.forwarded_tokens
        cached = denoiser.logits(ids, mask, positions)
        assert denoiser.forwarded_tokens - before == 2 * BLOCK
        assert (cached - _full(model, ids, mask, positions)).abs().max() < TOLERANCE


def test_the_engine_sampler_commits_the_same_with_and_without_the_cache(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    prompts = [case.prompts[0][:8], case.prompts[1][:4]]  # whole blocks: windows align
    settings = SamplerSettings(sub_block=BLOCK)
    runs = []
    for logits_of in (denoiser.logits, model.logits):
        canvases = [Canvas.empty(12, case.mask_id, denoiser.end_ids) for _ in prompts]
        for index in range(12):
            ids, mask, positions = pack_batch(prompts, canvases, case.pad_id, BLOCK)
            with torch.inference_mode():
                logits = logits_of(ids, mask, positions)
            left = BLOCK - index % BLOCK
            canvases = step(
                canvases, logits, steps_left=[left] * 2, step_index=[index] * 2, settings=settings
            )
        runs.append([c.tokens.tolist() for c in canvases])
    assert runs[0] == runs[1]


def test_tied_embeddings_and_attention_bias(tmp_path: Path) -> None:
    """SDAR-1.7B follows Qwen3-1.7B (tied head, no lm_head tensor); with `attention_bias` all
    four SDAR projections have biases."""
    folder = sdar.write_sdar_checkpoint(
        tmp_path / "tied", config_overrides={"tie_word_embeddings": True, "attention_bias": True}
    )
    tied = load_sdar(folder, dtype=torch.float32, device=CPU)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert tied.model.layers[0].self_attn.o_proj.bias is not None


def test_drafts_on_two_threads_share_one_cache_and_each_gets_its_own_logits(
    case: Case, denoiser: BlockCausalDenoiser, model: BlockCausalLM
) -> None:
    """Concurrent drafts call one denoiser from their own threads (unbatched, they take turns):
    the cache is shared state, so each call must see it whole, never half of another's update."""
    errors: list[str] = []
    start = threading.Barrier(2)

    def decode(row: list[int]) -> None:
        ids, mask = _batch([row], case.pad_id)
        start.wait(timeout=30)
        while (positions := _current_block(ids, mask, case.mask_id)).any():
            cached = denoiser.logits(ids, mask, positions)
            gap = float((cached - _full(model, ids, mask, positions)).abs().max())
            if gap >= TOLERANCE:
                errors.append(f"a row of length {len(row)} got logits off by {gap}")
            ids = _commit_most_confident(ids, positions, cached)

    for _ in range(3):
        threads = [threading.Thread(target=decode, args=(row,)) for row in case.rows()[:2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
