"""Dream (Dream-v0-Instruct-7B, Dream-Coder-v0-Instruct-7B) without `trust_remote_code`.

The published folders ship their own modelling code (`modeling_dream.py`), which no longer runs
under transformers 5 (its rotary embedding looks up `ROPE_INIT_FUNCTIONS["default"]`, which was
removed). This module is our own implementation of the same network, reading the published
`config.json` keys and the published safetensors by their published names, with plain torch.

The network (from the authors' `modeling_dream.py` and `configuration_dream.py`): a Qwen2-style
decoder used bidirectionally. Token embedding; per layer a pre-norm residual block of RMSNorm ->
grouped-query attention (q/k/v projections with bias, o_proj without, rotary embeddings with
rotate-half on the full head dimension, softmax scale 1/sqrt(head_dim), no causal mask) and
RMSNorm -> SwiGLU MLP (down(silu(gate(x)) * up(x)), no biases); a final RMSNorm; an untied
`lm_head` unless `tie_word_embeddings`. RMSNorm runs in float32 and casts back before the weight
multiplies; cos/sin are computed in float32 from float32 inverse frequencies
(1 / theta ** (2i / head_dim)) and cast to the activation dtype. head_dim is
hidden_size // num_attention_heads (the authors' code ignores any `head_dim` key).

Dream predicts each token from the hidden state one position to its left: the authors' sampler
(`generation_utils.py`, `_sample`) concatenates `logits[:, :1]` with `logits[:, :-1]` along the
sequence, so position 0 keeps its own logits and position i > 0 reads the hidden state at i - 1.
`DreamModel.logits` applies that shift and runs the LM head only on the rows it needs.

Padding. The authors' sampler, when the attention mask has zeros, uses position ids
`cumsum(mask) - 1` (padding positions set to 1) and a [B, 1, L, L] boolean mask that is the outer
product of the mask with itself; with no zeros it passes no mask and positions 0..L-1. We form
positions the same way on real tokens (padding positions are clamped to >= 0; they are never read)
and mask padding keys only, so padded query rows still attend to real keys and stay finite. For
the right-padded batches we build (real tokens at 0..n-1) every real position gets exactly the
authors' inputs, so a row's logits equal that row run alone.

Token ids (config.json first, tokenizer second):
- mask: `mask_token_id` in config.json, else the tokenizer's `mask_token`; published 151666,
  `<|mask|>` (also the default of the authors' DreamConfig). The generation_config.json of
  Dream-v0-Instruct-7B says `"mask_token_id": null`; the sampler takes it from the model config.
- end of text / pad: `eos_token_id` 151643 and `pad_token_id` 151643, `<|endoftext|>` (config.json
  and generation_config.json); the sampler pads the canvas tail with it. The chat turn ends with
  `<|im_end|>` 151645 (Qwen2.5 chat template, `<|im_start|>` 151644) before the `<|endoftext|>`
  padding.
- bos: 151643 in the Dream-v0 generation_config.json; Dream-Coder-derived configs say 151665
  (`<|beginoftext|>`). The chat template does not insert it.
- vocab_size 152064 (the embedding is padded past the 151667 tokenizer entries).

Sources read (December 2026): the authors' `modeling_dream.py`, `configuration_dream.py`,
`generation_utils.py` and `tokenization_dream.py` as carried by ZHZisZZ/dllm
(`dllm/pipelines/dream/models/`, whose only change is converting 2-D masks in `forward`), the
Fast-dLLM variants in DreamLM/Dream-Coder and megumi-ben/dlm-infra-rag, README usage in
DreamLM/Dream and DreamLM/Dream-Coder, the Dream-v0-Instruct-7B `generation_config.json`, the
Dream-Coder hub file list, and published config.json files of the same architecture
(apple/DiffuCoder-7B-Instruct, an RL fine-tune of Dream-Coder; the Dream-v0 config.json itself was
not readable here): model_type "Dream", architectures ["DreamModel"], auto_map to
configuration_dream.DreamConfig / modeling_dream.DreamModel, hidden 3584, 28 layers, 28 heads,
4 kv heads, intermediate 18944, rope_theta 1e6, rope_scaling null, rms_norm_eps 1e-6,
tie_word_embeddings false, sliding window off.

Where we differ on purpose: padded query rows attend to real keys (see above) instead of to
nothing; a `rope_scaling` other than null / "default" raises (the published checkpoints have none);
`hidden_act` must be "silu"; sliding-window settings are ignored, as the authors' SDPA path ignores
them; a transformers-5 `rope_parameters` block is read when `rope_theta` is absent. The inverse
frequencies stay float32 in every dtype, as the authors' loader leaves them with
`from_pretrained(torch_dtype=...)` (a later `model.to(bfloat16)` of their module would round them).

The tokenizer is the published vocab.json / merges.txt (or tokenizer.json) read by transformers'
Qwen2 tokenizer, which implements the same byte-level BPE, pre-tokenisation regex and NFC
normalisation as the authors' `DreamTokenizer` (a copy of the slow Qwen2 tokenizer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase, Qwen2Tokenizer

from engine.architectures.checkpoint import load_checkpoint

DREAM_MODEL_TYPE = "dream"  # config.json says "Dream"; compared case-insensitively
DREAM_ARCHITECTURE = "DreamModel"


@dataclass(frozen=True)
class DreamConfig:
    """The config.json keys the network depends on, with the authors' DreamConfig defaults."""

    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 22016
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    mask_token_id: int | None = 151666
    pad_token_id: int | None = 151643
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DreamConfig:
        """Read a published Dream config.json (already parsed); missing keys take the defaults
        of the authors' DreamConfig."""
        defaults = cls()
        heads = config.get("num_attention_heads", defaults.num_attention_heads)
        kv_heads = config.get("num_key_value_heads") or heads
        _check_rope_scaling(config.get("rope_scaling"))
        eos = config.get("eos_token_id", defaults.eos_token_id)
        return cls(
            vocab_size=config.get("vocab_size", defaults.vocab_size),
            hidden_size=config.get("hidden_size", defaults.hidden_size),
            intermediate_size=config.get("intermediate_size", defaults.intermediate_size),
            num_hidden_layers=config.get("num_hidden_layers", defaults.num_hidden_layers),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            hidden_act=config.get("hidden_act", defaults.hidden_act),
            max_position_embeddings=config.get(
                "max_position_embeddings", defaults.max_position_embeddings
            ),
            rms_norm_eps=float(config.get("rms_norm_eps", defaults.rms_norm_eps)),
            rope_theta=float(_rope_theta(config, defaults.rope_theta)),
            tie_word_embeddings=bool(
                config.get("tie_word_embeddings", defaults.tie_word_embeddings)
            ),
            mask_token_id=config.get("mask_token_id", defaults.mask_token_id),
            pad_token_id=config.get("pad_token_id", defaults.pad_token_id),
            bos_token_id=config.get("bos_token_id", defaults.bos_token_id),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (Dream uses silu)")


def _rope_theta(config: dict[str, Any], default: float) -> float:
    """`rope_theta` as published; a transformers-5 re-save keeps it in `rope_parameters`."""
    if "rope_theta" in config:
        return config["rope_theta"]
    return (config.get("rope_parameters") or {}).get("rope_theta", default)


def _check_rope_scaling(scaling: dict[str, Any] | None) -> None:
    """Only unscaled rotary embeddings (the authors accept "type" for "rope_type")."""
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if rope_type != "default":
        raise ValueError(
            f"rope_scaling type {rope_type!r} is not supported; the published Dream checkpoints "
            "use none"
        )


def is_dream_config(config: dict[str, Any]) -> bool:
    """True for a parsed config.json of the Dream architecture: `model_type` "Dream" (any case)
    and, when `architectures` is given, "DreamModel" among them. Dream-v0 and Dream-Coder (and
    Dream fine-tunes such as DiffuCoder) qualify; Dream-named variants with another model class
    (e.g. a block-causal "DreamForCausalLM") do not."""
    if str(config.get("model_type", "")).lower() != DREAM_MODEL_TYPE:
        return False
    architectures = config.get("architectures")
    return not architectures or DREAM_ARCHITECTURE in architectures


class DreamRMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        hidden, kv_width = config.hidden_size, config.num_key_value_heads * config.head_dim
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(hidden, kv_width, bias=True)
        self.v_proj = nn.Linear(hidden, kv_width, bias=True)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def _split(self, x: Tensor, heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, key_mask: Tensor | None) -> Tensor:
        q = self._split(self.q_proj(x), self.heads)
        k = self._split(self.k_proj(x), self.kv_heads)
        v = self._split(self.v_proj(x), self.kv_heads)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        batch, _, length, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class DreamMLP(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config)
        self.input_layernorm = DreamRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = DreamRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, key_mask: Tensor | None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, key_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBackbone(nn.Module):
    """The `model.` prefix of the published parameter names."""

    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            DreamDecoderLayer(config) for _ in range(config.num_hidden_layers)
        )
        self.norm = DreamRMSNorm(config.hidden_size, config.rms_norm_eps)


def _position_ids(attention_mask: Tensor | None, length: int, device: torch.device) -> Tensor:
    """[B or 1, L] positions: 0..L-1 without a mask, else each row's count of real tokens before
    the position (the authors' `cumsum(mask) - 1`), clamped to 0 for leading padding."""
    if attention_mask is None:
        return torch.arange(length, device=device).unsqueeze(0)
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _key_mask(attention_mask: Tensor | None) -> Tensor | None:
    """[B, 1, 1, L] boolean mask of the keys to attend to, or None when every key is real."""
    if attention_mask is None or bool(attention_mask.bool().all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class DreamModel(nn.Module):
    """Dream with the published parameter names (`model.embed_tokens.weight`,
    `model.layers.{i}.self_attn.q_proj.weight` / `.bias`, ..., `model.norm.weight`,
    `lm_head.weight`)."""

    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DreamBackbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.tie_weights()

    def tie_weights(self) -> None:
        """Share the embedding matrix with the LM head (only when the config ties them)."""
        self.lm_head.weight = self.model.embed_tokens.weight

    def _rotary(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos, sin of shape [B or 1, 1, L, head_dim], computed in float32, cast to `dtype`."""
        dim = self.config.head_dim
        exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=positions.device).float()
        inv_freq = 1.0 / (self.config.rope_theta ** (exponents / dim))
        freqs = positions.float().unsqueeze(-1) * inv_freq
        angles = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Hidden states [B, L, hidden] after the final norm, unshifted. `attention_mask` [B, L]
        has 1 for real tokens and 0 for padding (right padding: real tokens at 0..n-1)."""
        x = self.model.embed_tokens(input_ids)
        positions = _position_ids(attention_mask, input_ids.shape[1], input_ids.device)
        cos, sin = self._rotary(positions, x.dtype)
        key_mask = _key_mask(attention_mask)
        for layer in self.model.layers:
            x = layer(x, cos, sin, key_mask)
        return self.model.norm(x)

    def head(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits for hidden states [..., hidden]."""
        return self.lm_head(hidden)

    def logits(self, input_ids: Tensor, attention_mask: Tensor | None, positions: Tensor) -> Tensor:
        """Diffusion logits [N, V] for the True entries of `positions` [B, L], in row-major
        order: the prediction for position i comes from the hidden state at i - 1 (position 0
        from its own), as in the authors' sampler. The head runs only on those N rows."""
        hidden = self.forward(input_ids, attention_mask)
        rows, columns = positions.nonzero(as_tuple=True)
        return self.head(hidden[rows, (columns - 1).clamp(min=0)])


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def load_dream(folder: str | Path, *, dtype: torch.dtype, device: torch.device) -> DreamModel:
    """A published Dream folder (config.json plus `model.safetensors` or the shards of
    `model.safetensors.index.json`) as an eval-mode DreamModel in `dtype` on `device`. The
    tensor names are checked strictly (ValueError listing missing / unexpected names)."""
    folder = Path(folder)
    config = DreamConfig.from_dict(_read_json(folder / "config.json"))
    with torch.device("meta"):
        model = DreamModel(config)
    tied = ("lm_head.weight", "model.embed_tokens.weight") if config.tie_word_embeddings else None
    load_checkpoint(model, folder, architecture="Dream", dtype=dtype, device=device, tied_head=tied)
    if tied:
        model.tie_weights()
    return model


def load_dream_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The published tokenizer of a Dream folder without its remote `DreamTokenizer` code:
    tokenizer.json, or vocab.json + merges.txt, read as a Qwen2 byte-level BPE tokenizer with the
    folder's added tokens, special tokens and chat template. The mask token is the config.json
    `mask_token_id` when the folder has one, else the tokenizer_config `mask_token`."""
    folder = Path(folder)
    tokenizer = Qwen2Tokenizer.from_pretrained(str(folder), local_files_only=True)
    config_path = folder / "config.json"
    mask_id = _read_json(config_path).get("mask_token_id") if config_path.is_file() else None
    if mask_id is not None and tokenizer.mask_token_id != mask_id:
        tokenizer.mask_token = tokenizer.convert_ids_to_tokens(mask_id)
    if tokenizer.mask_token_id is None:
        raise ValueError(f"{folder}: the tokenizer declares no mask token and config.json none")
    return tokenizer
