"""The network the block-causal diffusion families share, as a plain torch module.

SDAR (Qwen3-based, `engine/architectures/sdar.py`) and Fast-dLLM v2 (Qwen2.5-based,
`engine/architectures/fast_dllm_v2.py`) are decoder-only transformers turned into block diffusion
models: attention is causal between blocks of `block_size` tokens, counted from position 0 of the
input (the prompt's first token), and bidirectional inside a block. A token in block b sees every
token of blocks < b and all of block b, so the keys and values of a finished block never change:
`forward_block` computes the blocks after a cached prefix and writes their keys and values into a
`KVCache`; `forward` is the same computation over a whole sequence, without a cache (the
reference the tests compare against).

What differs between the families is data in `BlockCausalConfig`: biases on q/k/v (Qwen2) or on
all four projections (Qwen3 `attention_bias`), per-head RMSNorm of q and k before RoPE (Qwen3),
how RMSNorm rounds (SDAR's flash-attn kernel scales in float32 and casts once; Qwen2's Hugging
Face norm casts, then scales), and whether the logit for position i is read from the hidden state
at i (SDAR) or at i - 1 (Fast-dLLM v2's token shift). The layers are otherwise the Qwen ones:
pre-norm residual blocks, grouped-query attention with rotate-half RoPE over the whole head
(inverse frequencies 1 / theta ** (2i / head_dim) in float32, cos/sin cast to the activation
dtype), softmax scale head_dim ** -0.5, SwiGLU MLP without biases, final RMSNorm, `lm_head`
(tied to the embedding when the config says so). Parameter names are the published ones:
`model.embed_tokens.weight`, `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`/`.bias`,
`.self_attn.{q,k}_norm.weight`, `.input_layernorm`, `.post_attention_layernorm`,
`.mlp.{gate,up,down}_proj.weight`, `model.norm.weight`, `lm_head.weight`.

Padding: rows are right-padded; padding keys are masked, and a query row with no key left
(padding) attends to every key so it stays finite; such rows are never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.architectures.checkpoint import load_checkpoint


@dataclass(frozen=True)
class BlockCausalConfig:
    """What the network depends on; each family reads it from its own config.json keys."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    block_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    qkv_bias: bool = False  # biases on q, k and v projections
    o_bias: bool = False  # a bias on the output projection
    qk_norm: bool = False  # RMSNorm of each head of q and k before RoPE
    norm_in_float32: bool = False  # RMSNorm scales by its weight in float32, then casts
    logit_shift: int = 0  # 1: the logit for position i comes from the hidden state at i - 1
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.block_size < 1:
            raise ValueError(f"block size must be positive, got {self.block_size}")
        if self.logit_shift not in (0, 1):
            raise ValueError(f"logit_shift must be 0 or 1, got {self.logit_shift}")


# ---------------------------------------------------------------------------------------------
# config.json helpers shared by the families


def read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def rope_theta_of(config: dict[str, Any], default: float) -> float:
    """`rope_theta` as published; a transformers-5 re-save keeps it in `rope_parameters`."""
    if "rope_theta" in config:
        return float(config["rope_theta"])
    return float((config.get("rope_parameters") or {}).get("rope_theta", default))


def check_supported(config: dict[str, Any], family: str) -> None:
    """Refuse what the published checkpoints of these families never use: RoPE scaling, an
    activation other than SiLU, sliding-window layers."""
    scaling = config.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"rope_scaling type {rope_type!r} is not supported for {family}")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {config['hidden_act']!r} is not supported for {family}")
    if config.get("use_sliding_window") or "sliding_attention" in (config.get("layer_types") or []):
        raise ValueError(f"sliding-window attention is not supported for {family}")


# ---------------------------------------------------------------------------------------------
# The cache of finished blocks


@dataclass
class KVCache:
    """Keys and values of a right-padded batch of rows, per layer [B, kv_heads, capacity,
    head_dim], after k-norm and RoPE. Slot p holds absolute position p; row b's first
    `lengths[b]` slots are valid (a whole number of finished blocks, when kept between calls)."""

    keys: list[Tensor]
    values: list[Tensor]
    lengths: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @classmethod
    def empty(cls, config: BlockCausalConfig, batch: int, capacity: int, like: Tensor) -> KVCache:
        shape = (batch, config.num_key_value_heads, capacity, config.head_dim)
        layers = range(config.num_hidden_layers)
        return cls(
            keys=[like.new_zeros(shape) for _ in layers],
            values=[like.new_zeros(shape) for _ in layers],
            lengths=torch.zeros(batch, dtype=torch.long),
        )

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def reserve(self, width: int) -> None:
        """Grow every buffer to hold at least `width` positions (doubling, so growth is rare)."""
        if width <= self.capacity:
            return
        capacity = max(width, 2 * self.capacity)
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                new = old.new_zeros((*old.shape[:2], capacity, old.shape[3]))
                new[:, :, : old.shape[2]] = old
                buffers[i] = new

    def gather(self, rows: list[int], lengths: list[int]) -> KVCache:
        """A new cache whose row i is the first `lengths[i]` slots of this cache's row
        `rows[i]` (-1: an empty row)."""
        layers = range(len(self.keys))
        keys = [self.keys[0].new_zeros((len(rows), *self.keys[0].shape[1:])) for _ in layers]
        values = [torch.zeros_like(k) for k in keys]
        for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
            if row < 0 or length == 0:
                continue
            for layer in layers:
                keys[layer][i, :, :length] = self.keys[layer][row, :, :length]
                values[layer][i, :, :length] = self.values[layer][row, :, :length]
        return KVCache(keys, values, torch.tensor(lengths, dtype=torch.long))

    def write(self, layer: int, k: Tensor, v: Tensor, starts: list[int]) -> tuple[Tensor, Tensor]:
        """Store a span's k, v [B, kv_heads, T, head_dim] at slots start..start+T of each row;
        returns the layer's keys and values up to the widest row's end."""
        width = k.shape[2]
        for row, start in enumerate(starts):
            self.keys[layer][row, :, start : start + width] = k[row]
            self.values[layer][row, :, start : start + width] = v[row]
        end = max(starts) + width
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def block_causal_mask(
    query_positions: Tensor, key_positions: Tensor, key_valid: Tensor, block_size: int
) -> Tensor:
    """[B, 1, Q, K] bool: a query at absolute position p sees a valid key at position q iff
    q // block_size <= p // block_size. A query row with no key allowed sees every key."""
    query_blocks = (query_positions // block_size)[:, :, None]
    key_blocks = (key_positions // block_size)[:, None, :]
    mask = key_valid[:, None, :] & (key_blocks <= query_blocks)
    return (mask | ~mask.any(-1, keepdim=True))[:, None]


# ---------------------------------------------------------------------------------------------
# The network


class RMSNorm(nn.Module):
    """Normalised in float32; scaled in float32 then cast (flash-attn's `rms_norm_fn`, SDAR) or
    cast then scaled in the input dtype (Hugging Face's Qwen2 norm)."""

    def __init__(self, size: int, eps: float, scale_in_float32: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps
        self.scale_in_float32 = scale_in_float32

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.scale_in_float32:
            return (x32 * self.weight.float()).to(x.dtype)
        return self.weight * x32.to(x.dtype)


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


@dataclass(frozen=True)
class _LayerPast:
    cache: KVCache
    layer: int
    starts: list[int]


class Attention(nn.Module):
    def __init__(self, config: BlockCausalConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        hidden, dim = config.hidden_size, config.head_dim
        self.q_proj = nn.Linear(hidden, self.heads * dim, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden, self.kv_heads * dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden, self.kv_heads * dim, bias=config.qkv_bias)
        self.o_proj = nn.Linear(self.heads * dim, hidden, bias=config.o_bias)
        if config.qk_norm:
            self.q_norm = RMSNorm(dim, config.rms_norm_eps, config.norm_in_float32)
            self.k_norm = RMSNorm(dim, config.rms_norm_eps, config.norm_in_float32)

    def _heads(self, x: Tensor, heads: int) -> Tensor:
        return x.view(*x.shape[:2], heads, -1)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor, past: _LayerPast | None
    ) -> Tensor:
        q = self._heads(self.q_proj(x), self.heads)
        k = self._heads(self.k_proj(x), self.kv_heads)
        v = self._heads(self.v_proj(x), self.kv_heads).transpose(1, 2)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past is not None:
            k, v = past.cache.write(past.layer, k, v, past.starts)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(*x.shape[:2], -1))


class GatedMLP(nn.Module):
    def __init__(self, config: BlockCausalConfig) -> None:
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: BlockCausalConfig) -> None:
        super().__init__()
        norm = (config.hidden_size, config.rms_norm_eps, config.norm_in_float32)
        self.self_attn = Attention(config)
        self.mlp = GatedMLP(config)
        self.input_layernorm = RMSNorm(*norm)
        self.post_attention_layernorm = RMSNorm(*norm)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor, past: _LayerPast | None
    ) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, past)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """The `model.` prefix of the published parameter names."""

    def __init__(self, config: BlockCausalConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.norm_in_float32)


def _as_list(values: int | Tensor | list[int], batch: int) -> list[int]:
    if isinstance(values, int):
        return [values] * batch
    return [int(v) for v in values]


class BlockCausalLM(nn.Module):
    """A block-causal decoder with the published parameter names: `forward` is the
    full-sequence block-causal pass, `forward_block` the same computation for the blocks after a
    cached prefix, `logits` the diffusion logits of the full pass (with the family's shift)."""

    def __init__(self, config: BlockCausalConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.tie_weights()

    def tie_weights(self) -> None:
        """Share the embedding matrix with the LM head (only when the config ties them)."""
        self.lm_head.weight = self.model.embed_tokens.weight

    def _rotary(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos, sin [B, 1, L, head_dim] for absolute positions [B, L], in float32, cast."""
        dim = self.config.head_dim
        exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=positions.device).float()
        inv_freq = 1.0 / (self.config.rope_theta ** (exponents / dim))
        freqs = positions.float().unsqueeze(-1) * inv_freq
        angles = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def _layers(
        self,
        input_ids: Tensor,
        positions: Tensor,
        mask: Tensor,
        cache: KVCache | None,
        starts: list[int] | None,
    ) -> Tensor:
        x = self.model.embed_tokens(input_ids)
        rope = self._rotary(positions, x.dtype)
        for index, layer in enumerate(self.model.layers):
            past = (
                _LayerPast(cache, index, starts)
                if cache is not None and starts is not None
                else None
            )
            x = layer(x, rope, mask, past)
        return self.model.norm(x)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Hidden states [B, L, hidden] after the final norm, of the whole sequence under the
        block-causal mask. `attention_mask` [B, L]: 1 for real tokens, 0 for right padding."""
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        valid = attention_mask.bool()
        mask = block_causal_mask(positions, positions, valid, self.config.block_size)
        return self._layers(input_ids, positions, mask, None, None)

    def forward_block(
        self,
        input_ids: Tensor,
        past: KVCache | None,
        start_position: int | Tensor | list[int],
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Hidden states [B, T, hidden] of `input_ids` [B, T] placed at absolute positions
        start..start+T of each row, attending to the row's first `start` positions in `past` and
        to themselves block-causally; and the cache with their keys and values written in
        (its `lengths` then count them: start + the row's real tokens).

        `start_position` (an int, or one per row) must be a block boundary and the row's valid
        length in `past`, so every cached key lies in an earlier, finished block.
        `lengths` [B]: real tokens per row (right padding after them); default all T."""
        batch, width = input_ids.shape
        starts = _as_list(start_position, batch)
        real = _as_list(width if lengths is None else lengths, batch)
        if any(s % self.config.block_size for s in starts):
            raise ValueError(f"start positions {starts} are not all block boundaries")
        if past is None:
            if any(starts):
                raise ValueError("a block after position 0 needs the cache of its prefix")
            past = KVCache.empty(self.config, batch, width, self.lm_head.weight)
        elif past.lengths.tolist() != starts:
            raise ValueError(f"cache lengths {past.lengths.tolist()} != start positions {starts}")
        past.reserve(max(starts) + width)
        device = input_ids.device
        start_tensor = torch.tensor(starts, device=device)
        positions = start_tensor[:, None] + torch.arange(width, device=device)
        ends = start_tensor + torch.tensor(real, device=device)
        key_positions = torch.arange(max(starts) + width, device=device).expand(batch, -1)
        mask = block_causal_mask(
            positions, key_positions, key_positions < ends[:, None], self.config.block_size
        )
        hidden = self._layers(input_ids, positions, mask, past, starts)
        past.lengths = ends.cpu()
        return hidden, past

    def head(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits for hidden states [..., hidden]."""
        return self.lm_head(hidden)

    def logits(self, input_ids: Tensor, attention_mask: Tensor | None, positions: Tensor) -> Tensor:
        """Diffusion logits [N, V] at the True entries of `positions` [B, L], row-major, from the
        full block-causal pass (no cache): position i reads the hidden state at
        i - `logit_shift` (position 0 its own)."""
        hidden = self.forward(input_ids, attention_mask)
        rows, columns = positions.nonzero(as_tuple=True)
        return self.head(hidden[rows, (columns - self.config.logit_shift).clamp(min=0)])


# ---------------------------------------------------------------------------------------------
# Loading


def load_block_causal(
    folder: str | Path,
    config: BlockCausalConfig,
    *,
    family: str,
    dtype: torch.dtype,
    device: torch.device,
) -> BlockCausalLM:
    """The weights of a published folder (`model.safetensors` or the shards of its index) in a
    BlockCausalLM built on the meta device, names and shapes checked strictly (ValueError),
    in eval mode, in `dtype` on `device`."""
    with torch.device("meta"):
        model = BlockCausalLM(config)
    tied = ("lm_head.weight", "model.embed_tokens.weight") if config.tie_word_embeddings else None
    load_checkpoint(
        model, Path(folder), architecture=family, dtype=dtype, device=device, tied_head=tied
    )
    if tied:
        model.tie_weights()
    return model


def load_qwen2_tokenizer(
    folder: str | Path, mask_token_id: int | None, mask_tokens: tuple[str, ...]
):
    """A published Qwen2 byte-level BPE tokenizer (tokenizer.json, or vocab.json + merges.txt,
    with the folder's added tokens and chat template) read by transformers' Qwen2 tokenizer,
    without the folder's remote tokenizer code. Its mask token becomes `mask_token_id` when given,
    else the first of `mask_tokens` in its vocabulary, else the one it declares."""
    from transformers import Qwen2Tokenizer

    tokenizer = Qwen2Tokenizer.from_pretrained(str(folder), local_files_only=True)
    vocab = tokenizer.get_vocab()
    if mask_token_id is not None:
        tokenizer.mask_token = tokenizer.convert_ids_to_tokens(mask_token_id)
    elif tokenizer.mask_token_id is None:
        known = [token for token in mask_tokens if token in vocab]
        if known:
            tokenizer.mask_token = known[0]
    if tokenizer.mask_token_id is None:
        raise ValueError(f"{folder}: no mask token in config.json or the tokenizer")
    return tokenizer
