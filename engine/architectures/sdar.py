"""SDAR (JetLM/SDAR-1.7B-Chat, SDAR-4B-Chat, SDAR-8B-Chat) without `trust_remote_code`.

SDAR is a Qwen3 decoder turned into a block diffusion model: attention is causal between blocks
of `block_size` tokens and bidirectional inside a block, so a token in block b sees every token of
blocks < b and all of block b. Keys and values of a finished block therefore never change, which
is what the exact KV cache of `engine/block_causal.py` relies on. This module is our own plain
torch implementation, reading the published `config.json` keys and safetensors names.

Read from the authors' files (JetAstra/SDAR, December 2026): `training/model/SDAR-4B-Chat/` and
`SDAR-8B-Chat/` (`modeling_sdar.py`, `configuration_sdar.py`, `config.json`,
`generation_config.json`, `tokenizer_config.json`, `special_tokens_map.json`,
`added_tokens.json`, `model.safetensors.index.json`), the repository's `generate.py` and
`README.md`, and `evaluation/opencompass/opencompass/models/huggingface_bd3.py` with
`evaluation/opencompass/configs/eval_sdar_hf.py`. Facts used:

- config.json: model_type "sdar", architectures ["SDARForCausalLM"], auto_map to
  configuration_sdar.SDARConfig / modeling_sdar.SDARModel / modeling_sdar.SDARForCausalLM,
  `block_size` 4, `mask_token_id` 151669, bos = eos 151643, `head_dim` 128 (a key of its own, not
  hidden / heads), attention_bias false, rope_theta 1e6, rope_scaling null, rms_norm_eps 1e-6,
  tie_word_embeddings false (4B: hidden 2560, 36 layers, 32 heads, 8 kv heads, intermediate
  9728; 8B: hidden 4096, intermediate 12288), vocab 151936; generation_config eos
  [151645 `<|im_end|>`, 151643 `<|endoftext|>`], pad 151643.
- names (the Qwen3 layout): `model.embed_tokens.weight`, `model.layers.{i}.input_layernorm`,
  `.self_attn.{q,k,v,o}_proj.weight` (and `.bias` on all four when `attention_bias`),
  `.self_attn.{q,k}_norm.weight` (RMSNorm over each head's head_dim, applied before RoPE),
  `.post_attention_layernorm`, `.mlp.{gate,up,down}_proj.weight`, `model.norm.weight`,
  `lm_head.weight` (tied to the embedding when `tie_word_embeddings`, as `_tied_weights_keys`).
- RMSNorm is flash-attn's `rms_norm_fn`: normalise in float32, multiply by the weight in float32,
  cast once to the input dtype (the Hugging Face cast-then-multiply is commented out there).
- RoPE: default inverse frequencies 1 / theta ** (2i / head_dim) in float32, cos/sin computed in
  float32 and cast to the activation dtype, rotate-half over the whole head; position ids are the
  absolute positions 0..L-1 of the whole sequence, prompt included.
- attention: softmax scale head_dim ** -0.5, grouped key/value heads, no sliding window at
  inference; the block-causal mask is `tril(ones(blocks, blocks))` repeated `block_size` times in
  both dimensions, with blocks counted from sequence position 0 (the prompt's first token).
- generation (`generate.py`, `huggingface_bd3.py`): the prompt's whole blocks are prefilled
  block-causally into the cache; the prompt's last partial block is the first decoded block, its
  masks filling the rest of it; each step recomputes only the current block against the cache;
  a block is stored (`store_kv=True`) once it has no mask left. The logits are not shifted: the
  logit at position i is the prediction for token i.

Where we differ on purpose: `forward_block` takes right-padded ragged rows (the authors' sampler
runs one row); padding keys are masked and padded query rows attend to every key so they stay
finite (they are never read). Only unscaled RoPE and `hidden_act` "silu" are built; anything else
is refused with a ValueError. Sliding-window keys are ignored, as the authors' inference path
ignores them. Nothing here imports transformers except the tokenizer loader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

SDAR_MODEL_TYPE = "sdar"
SDAR_ARCHITECTURE = "SDARForCausalLM"
SDAR_MASK_TOKENS = ("<|MASK|>", "<MASK>")  # tokenizer_config says the first, added_tokens.json
SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
DEFAULT_BLOCK_SIZE = 4  # the default SDAR models; variants publish 8, 16, 32 and 64


@dataclass(frozen=True)
class SDARConfig:
    """The config.json keys the network depends on, with the authors' SDARConfig defaults."""

    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 22016
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int = 128
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    block_size: int = DEFAULT_BLOCK_SIZE
    mask_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> SDARConfig:
        """Read a published SDAR config.json (parsed); missing keys take the authors' defaults."""
        _check_rope_scaling(config.get("rope_scaling"))
        defaults = cls()
        heads = config.get("num_attention_heads", defaults.num_attention_heads)
        eos = config.get("eos_token_id")
        values = {
            name: config[name]
            for name in cls.__dataclass_fields__
            if name in config and config[name] is not None
        }
        values |= {
            "num_attention_heads": heads,
            "num_key_value_heads": config.get("num_key_value_heads") or heads,
            "rms_norm_eps": float(config.get("rms_norm_eps", defaults.rms_norm_eps)),
            "rope_theta": float(_rope_theta(config, defaults.rope_theta)),
            "eos_token_id": tuple(eos) if isinstance(eos, list) else eos,
        }
        return cls(**values)

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (SDAR uses silu)")
        if self.block_size < 1:
            raise ValueError(f"block_size must be positive, got {self.block_size}")


def _rope_theta(config: dict[str, Any], default: float) -> float:
    """`rope_theta` as published; a transformers-5 re-save keeps it in `rope_parameters`."""
    if "rope_theta" in config:
        return config["rope_theta"]
    return (config.get("rope_parameters") or {}).get("rope_theta", default)


def _check_rope_scaling(scaling: dict[str, Any] | None) -> None:
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if rope_type != "default":
        raise ValueError(
            f"rope_scaling type {rope_type!r} is not supported; the published SDAR checkpoints "
            "use none"
        )


def is_sdar_config(config: dict[str, Any]) -> bool:
    """True for a parsed config.json of SDAR: `model_type` "sdar" or `architectures` naming
    `SDARForCausalLM`. (The MoE SDAR-30B-A3B has another model type and is not built here.)"""
    architectures = config.get("architectures") or []
    return str(config.get("model_type", "")).lower() == SDAR_MODEL_TYPE or (
        SDAR_ARCHITECTURE in architectures
    )


# ---------------------------------------------------------------------------------------------
# The cache of finished blocks


@dataclass
class KVCache:
    """Keys and values of a right-padded batch of rows, per layer [B, kv_heads, capacity,
    head_dim], after k_norm and RoPE. Slot p holds absolute position p; row b's first
    `lengths[b]` slots are valid (a whole number of finished blocks, when kept between calls)."""

    keys: list[Tensor]
    values: list[Tensor]
    lengths: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @classmethod
    def empty(cls, config: SDARConfig, batch: int, capacity: int, like: Tensor) -> KVCache:
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
        """Store a block's k, v [B, kv_heads, T, head_dim] at slots start..start+T of each row;
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
    """[B, 1, Q, K] bool: query at absolute position p sees a valid key at position q iff
    q // block_size <= p // block_size. A query row with no key allowed (padding) sees every key,
    so attention stays finite there; such rows are never read."""
    query_blocks = (query_positions // block_size)[:, :, None]
    key_blocks = (key_positions // block_size)[:, None, :]
    mask = key_valid[:, None, :] & (key_blocks <= query_blocks)
    return (mask | ~mask.any(-1, keepdim=True))[:, None]


# ---------------------------------------------------------------------------------------------
# The network


class SDARRMSNorm(nn.Module):
    """flash-attn's rms_norm_fn: normalise and scale in float32, cast once."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class SDARAttention(nn.Module):
    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        hidden, bias = config.hidden_size, config.attention_bias
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=bias)
        self.q_norm = SDARRMSNorm(self.head_dim, config.rms_norm_eps)
        self.k_norm = SDARRMSNorm(self.head_dim, config.rms_norm_eps)

    def _heads(self, x: Tensor, heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor, past: _LayerPast | None
    ) -> Tensor:
        cos, sin = rope
        batch, length, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(batch, length, self.heads, -1)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(batch, length, self.kv_heads, -1)).transpose(1, 2)
        v = self._heads(self.v_proj(x), self.kv_heads)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past is not None:
            k, v = past.cache.write(past.layer, k, v, past.starts)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


@dataclass(frozen=True)
class _LayerPast:
    cache: KVCache
    layer: int
    starts: list[int]


class SDARMLP(nn.Module):
    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SDARDecoderLayer(nn.Module):
    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.self_attn = SDARAttention(config)
        self.mlp = SDARMLP(config)
        self.input_layernorm = SDARRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = SDARRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor], mask: Tensor, past: _LayerPast | None
    ) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, past)
        return x + self.mlp(self.post_attention_layernorm(x))


class SDARBackbone(nn.Module):
    """The `model.` prefix of the published parameter names."""

    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            SDARDecoderLayer(config) for _ in range(config.num_hidden_layers)
        )
        self.norm = SDARRMSNorm(config.hidden_size, config.rms_norm_eps)


def _as_starts(start_position: int | Tensor | list[int], batch: int) -> list[int]:
    if isinstance(start_position, int):
        return [start_position] * batch
    return [int(s) for s in start_position]


class SDARModel(nn.Module):
    """SDAR with the published parameter names (`model.embed_tokens.weight`, ...,
    `lm_head.weight`): `forward` is the full-sequence block-causal pass, `forward_block` the
    same computation for the blocks after a cached prefix."""

    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.config = config
        self.model = SDARBackbone(config)
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
        self, input_ids: Tensor, positions: Tensor, mask: Tensor, cache: KVCache | None, starts
    ) -> Tensor:
        x = self.model.embed_tokens(input_ids)
        rope = self._rotary(positions, x.dtype)
        for index, layer in enumerate(self.model.layers):
            past = _LayerPast(cache, index, starts) if cache is not None else None
            x = layer(x, rope, mask, past)
        return self.model.norm(x)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Hidden states [B, L, hidden] after the final norm, of the whole sequence under the
        block-causal mask (blocks from position 0). `attention_mask` [B, L]: 1 for real tokens,
        0 for right padding, whose keys are masked."""
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = block_causal_mask(
            positions, positions, attention_mask.bool(), self.config.block_size
        )
        return self._layers(input_ids, positions, mask, None, None)

    def forward_block(
        self,
        input_ids: Tensor,
        past: KVCache | None,
        start_position: int | Tensor | list[int],
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Hidden states [B, T, hidden] of the tokens `input_ids` [B, T] placed at absolute
        positions start..start+T of each row, attending to the row's first `start` cached
        positions of `past` and to themselves block-causally; and the cache with their keys and
        values written in (`lengths` then counts them: start + the row's real tokens).

        `start_position` (an int, or one per row) must be a block boundary and equal to the
        row's valid length in `past`, so every cached key lies in an earlier, finished block.
        `lengths` [B]: real tokens per row (right padding after them); default all T."""
        batch, width = input_ids.shape
        starts = _as_starts(start_position, batch)
        real = [width] * batch if lengths is None else [int(n) for n in lengths]
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
        offsets = torch.arange(width, device=device)
        start_tensor = torch.tensor(starts, device=device)
        positions = start_tensor[:, None] + offsets
        ends = start_tensor + torch.tensor(real, device=device)
        key_positions = torch.arange(max(starts) + width, device=device).expand(batch, -1)
        key_valid = key_positions < ends[:, None]
        mask = block_causal_mask(positions, key_positions, key_valid, self.config.block_size)
        hidden = self._layers(input_ids, positions, mask, past, starts)
        past.lengths = ends.cpu()
        return hidden, past

    def head(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits for hidden states [..., hidden]."""
        return self.lm_head(hidden)

    def logits(self, input_ids: Tensor, attention_mask: Tensor | None, positions: Tensor) -> Tensor:
        """Logits [N, V] at the True entries of `positions` [B, L], row-major, from the full
        block-causal pass (no cache). Unshifted: position i predicts token i."""
        hidden = self.forward(input_ids, attention_mask)
        return self.head(hidden[positions])


# ---------------------------------------------------------------------------------------------
# Loading


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _checkpoint_files(folder: Path) -> list[Path]:
    """`model.safetensors`, or the shards `model.safetensors.index.json` names."""
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    if (folder / SHARD_INDEX).is_file():
        weight_map = _read_json(folder / SHARD_INDEX)["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    raise FileNotFoundError(f"{folder}: neither {SINGLE_FILE} nor {SHARD_INDEX} found")


def _read_tensors(files: list[Path], device: torch.device) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for path in files:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                if name in tensors:
                    raise ValueError(f"{path}: tensor {name!r} appears in more than one shard")
                tensors[name] = handle.get_tensor(name)
    return tensors


def _check_names(folder: Path, model: SDARModel, tensors: dict[str, Tensor]) -> None:
    """Exactly the published names with the expected shapes, or a ValueError listing the
    differences. A tied checkpoint may leave out `lm_head.weight`."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    optional = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    missing = sorted(set(expected) - set(tensors) - optional)
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        f"{name} {tuple(tensors[name].shape)} (expected {expected[name]})"
        for name in set(expected) & set(tensors)
        if tuple(tensors[name].shape) != expected[name]
    )
    problems = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("wrong shapes", wrong_shape),
        )
        if names
    ]
    if problems:
        raise ValueError(f"{folder} does not match the SDAR architecture; " + "; ".join(problems))


def read_sdar_config(folder: str | Path) -> SDARConfig:
    return SDARConfig.from_dict(_read_json(Path(folder) / "config.json"))


def load_sdar(folder: str | Path, *, dtype: torch.dtype, device: torch.device) -> SDARModel:
    """A published SDAR folder (config.json plus `model.safetensors` or the shards of
    `model.safetensors.index.json`) as an eval-mode SDARModel in `dtype` on `device`, built on
    the meta device. Tensor names and shapes are checked strictly (ValueError)."""
    folder = Path(folder)
    config = read_sdar_config(folder)
    with torch.device("meta"):
        model = SDARModel(config)
    tensors = _read_tensors(_checkpoint_files(folder), torch.device(device))
    _check_names(folder, model, tensors)
    if config.tie_word_embeddings:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    state = {name: tensor.to(dtype=dtype) for name, tensor in tensors.items()}
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    return model.requires_grad_(False).eval()


def load_sdar_tokenizer(folder: str | Path):
    """The published tokenizer (tokenizer.json, or vocab.json + merges.txt, with the folder's
    added tokens and chat template) read by transformers' Qwen2 tokenizer, without the folder's
    remote `tokenization_qwen2.py`. The mask token is set from config.json's `mask_token_id`
    when the tokenizer declares another one (or none)."""
    from transformers import Qwen2Tokenizer

    folder = Path(folder)
    tokenizer = Qwen2Tokenizer.from_pretrained(str(folder), local_files_only=True)
    config_path = folder / "config.json"
    mask_id = _read_json(config_path).get("mask_token_id") if config_path.is_file() else None
    if mask_id is not None and tokenizer.mask_token_id != mask_id:
        tokenizer.mask_token = tokenizer.convert_ids_to_tokens(mask_id)
    if tokenizer.mask_token_id is None:
        raise ValueError(f"{folder}: the tokenizer declares no mask token and config.json none")
    return tokenizer
