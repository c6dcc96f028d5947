"""LLaDA (LLaDA-8B-Instruct, LLaDA-1.5) and LLaDA-MoE-7B-A1B-Instruct as plain torch modules.

The published modelling code of these checkpoints (`modeling_llada.py`, `modeling_lladamoe.py`,
loaded with `trust_remote_code`) no longer runs under transformers 5.x, so this module rebuilds
both architectures from their published `config.json` keys and loads the published safetensors
by their published parameter names. Nothing here imports transformers.

What was read, and from where (December 2026):

- Dense LLaDA: `llada/model/modeling_llada.py` and `configuration_llada.py` of NVlabs/Fast-dLLM
  (a copy of the hub files of GSAI-ML/LLaDA-8B-Instruct), `LLaDALlamaBlock` and `LLaDAModel`,
  cross-read with `dllm/pipelines/llada/models/modeling_llada.py` of ZHZisZZ/dllm and
  `generate.py` of ML-GSAI/LLaDA. Facts used:
  names `model.transformer.wte.weight`, `model.transformer.blocks.{i}.{attn_norm, q_proj,
  k_proj, v_proj, attn_out, ff_norm, ff_proj, up_proj, ff_out}.weight` (optional `q_norm`,
  `k_norm`), `model.transformer.ln_f.weight`, and `model.transformer.ff_out.weight` unless
  `weight_tying`; pre-norm blocks with RMSNorm (`layer_norm_type: "rms"`, eps `rms_norm_eps`,
  computed in float32, cast back, then times the weight); the FFN is
  `ff_out(act(ff_proj(x)) * up_proj(x))`, so `ff_proj` is the gated branch
  (`activation_type: "silu"`); head_dim = d_model / n_heads, k/v with `n_kv_heads` heads (GQA by
  `repeat_interleave`); RoPE over the whole head in the rotate-half layout (first half / second
  half, not interleaved pairs), inverse frequencies `rope_theta ** (-2i / head_dim)`, positions
  0..L-1, applied in float32 when `rope_full_precision`; attention is bidirectional
  (`is_causal=False`), scaled by 1/sqrt(head_dim); the output width is `embedding_size`
  (`vocab_size` if that is null), tied to `wte` when `weight_tying`; optional `input_emb_norm`
  (embeddings times sqrt(d_model)) and `scale_logits` (logits over sqrt(d_model)).
- LLaDA-MoE: `modeling_lladamoe.py` and `configuration_lladamoe.py` as first published (copies in
  InfiniTensor/InfiniLM, where the config class is `LLaDAConfig` with model_type "llada"; the
  same code with attention-mask support in ZHZisZZ/dllm, model_type "lladamoe"). Facts used:
  names `model.embed_tokens.weight`, `model.layers.{i}.input_layernorm.weight`,
  `.self_attn.{q,k,v,o}_proj.weight` (biases when `attention_bias`),
  `.self_attn.{q_norm,k_norm}.weight` when `qk_layernorm` (RMSNorm over each head's head_dim,
  before RoPE), `.post_attention_layernorm.weight`, MoE layers (`moe_layer_freq[i] != 0`)
  `.mlp.gate.weight`, `.mlp.experts.{e}.{gate,up,down}_proj.weight`, `.mlp.expert_bias` when
  `moe_router_enable_expert_bias`, `.shared_expert.{gate,up,down}_proj.weight` when
  `shared_expert_intermediate_size` is not null, dense layers `.mlp.{gate,up,down}_proj.weight`
  (`dense_intermediate_size`), `model.norm.weight`, `lm_head.weight` (tied to `embed_tokens` when
  `tie_word_embeddings`); experts are `down(silu(gate(x)) * up(x))`; routing is a float32
  softmax over all experts, plus `expert_bias` when present, then top-`num_experts_per_tok`,
  the selected probabilities used as weights unnormalised (the published block hardcodes
  `norm_topk_prob = False`, whatever the config says; `moe_router_score_function`,
  `routed_scaling_factor` and the router group keys are read by nothing), cast to the hidden
  dtype; RoPE rotates the first `head_dim * partial_rotary_factor` dims (rotate-half within
  them), with cos/sin cast to the hidden dtype; `clip_qkv` clamps q, k, v when set.
- Config facts: GSAI-ML/LLaDA-8B-Instruct (LLaDA-1.5 shares the architecture): model_type
  "llada", architectures ["LLaDAModelLM"], d_model 4096, n_heads 32, n_kv_heads 32, n_layers 32,
  mlp_hidden_size 12288, vocab_size = embedding_size = 126464, rope_theta 500000.0,
  rms_norm_eps 1e-5, weight_tying false, block_type "llama", layer_norm_type "rms",
  activation_type "silu", mask_token_id 126336, eos_token_id 126081 (these values as quoted by
  several public projects that validate the published config.json; the file itself was not
  reachable). LLaDA-MoE-7B-A1B-Instruct: hidden_size 2048, 16 layers, 16 heads, 16 kv heads,
  64 experts, 8 per token, expert_intermediate_size 1024, dense_intermediate_size 8192, every
  layer MoE, no shared expert, qk_layernorm true, rope_theta 50000, 8192 positions (quoted by
  public ports; not read from the file itself).

Token ids (see `LLaDATokenIds`): config.json keys first, the tokenizer second.
- LLaDA-8B-Instruct / LLaDA-1.5: mask 126336 `<|mdm_mask|>` (config `mask_token_id`; the
  tokenizer does not declare it as its mask token), EOS 126081 `<|endoftext|>` (config
  `eos_token_id`, which is also what pads an answer in training), EOT 126348 `<|eot_id|>` (the
  tokenizer's vocabulary; `generate.py` of ML-GSAI/LLaDA hardcodes 126081 and 126348).
- LLaDA-MoE-7B-A1B-Instruct: mask 156895 `<|mask|>` (its model card and inclusionAI/dInfer; no
  config key, and the tokenizer does not declare a mask token), EOS 156892 `<|endoftext|>`
  (dInfer's `eos_id`), end of turn `<|role_end|>` (its chat template; id from the tokenizer).

Checked (one-off, outside the repo) against the authors' own code, run on the tiny checkpoints of
tests/llada_checkpoints.py with only its transformers-5 breakages patched (Fast-dLLM's
`LLaDAModel`; the first published `LLaDAMoEModelLM`, given transformers 4.x's default RoPE init):
identical logits in float32 and in bfloat16. For bfloat16 the published MoE RoPE buffer
`inv_freq` must stay float32, as `from_pretrained(torch_dtype=...)` leaves it; a later
`.to(torch.bfloat16)` of their module rounds it, which we do not imitate.

Where we differ on purpose:
- `attention_mask` is honoured: keys at 0 positions are masked out of attention (an additive
  float32-minimum bias, as ZHZisZZ/dllm's fix does). The published code of both models ignores
  `attention_mask` (its attention gets `attn_mask=None`), so a padded batch there depends on the
  padding; here a right-padded row equals that row run alone, and equals the published code run
  on the unpadded row. Without padding the two are the same computation.
- Only the configurations the published checkpoints use are built (llama blocks, RMSNorm, SiLU,
  RoPE, no block groups, no RoPE scaling); anything else is refused with a ValueError instead of
  being half supported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.architectures.checkpoint import load_checkpoint

DENSE_ARCHITECTURE = "LLaDAModelLM"
MOE_ARCHITECTURE = "LLaDAMoEModelLM"
MODEL_TYPES = ("llada", "lladamoe")

DENSE_MASK_TOKEN = "<|mdm_mask|>"
MOE_MASK_TOKEN = "<|mask|>"
DENSE_END_OF_TURN_TOKEN = "<|eot_id|>"
MOE_END_OF_TURN_TOKEN = "<|role_end|>"


def is_llada_config(config: dict) -> bool:
    """True for a config.json of LLaDA or LLaDA-MoE: `model_type` "llada" (both publish that) or
    "lladamoe" (ZHZisZZ/dllm's rewrite of the MoE one), or `architectures` naming `LLaDAModelLM` /
    `LLaDAMoEModelLM`. LLaDA 2.x (`llada2_moe`, block-causal) is a different architecture."""
    architectures = config.get("architectures") or []
    return config.get("model_type") in MODEL_TYPES or any(
        name in (DENSE_ARCHITECTURE, MOE_ARCHITECTURE) for name in architectures
    )


def _is_moe_dict(config: dict) -> bool:
    architectures = config.get("architectures") or []
    return (
        MOE_ARCHITECTURE in architectures
        or config.get("model_type") == "lladamoe"
        or "num_experts" in config
    )


def _require(config: dict, key: str, allowed: tuple[object, ...]) -> None:
    value = config.get(key, allowed[0])
    if value not in allowed:
        raise ValueError(f"LLaDA config {key}={value!r} is not supported (expected {allowed!r})")


@dataclass(frozen=True)
class LLaDAConfig:
    """The architecture of one LLaDA or LLaDA-MoE checkpoint, in family-neutral names.

    `mlp_hidden_size` is the dense FFN width (LLaDA `mlp_hidden_size`, MoE
    `dense_intermediate_size`); `embedding_size` the number of embedding rows and logits;
    `rotary_dim` how many leading dims of each head RoPE rotates. `moe_layers[i]` says whether
    layer i is an MoE layer.
    """

    d_model: int
    n_heads: int
    n_kv_heads: int
    n_layers: int
    mlp_hidden_size: int
    vocab_size: int
    embedding_size: int
    rope_theta: float
    rotary_dim: int
    rms_norm_eps: float
    weight_tying: bool
    max_sequence_length: int
    mask_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    linear_bias: bool = False
    qkv_bias: bool = False
    norm_bias: bool = False
    qk_norm: bool = False
    rope_full_precision: bool = True
    input_emb_norm: bool = False
    scale_logits: bool = False
    clip_qkv: float | None = None
    moe_layers: tuple[bool, ...] = ()
    num_experts: int = 0
    num_experts_per_tok: int = 0
    expert_intermediate_size: int = 0
    shared_expert_intermediate_size: int | None = None
    expert_bias: bool = False

    @property
    def is_moe(self) -> bool:
        return any(self.moe_layers)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, config: dict) -> LLaDAConfig:
        """Read a published config.json (dense LLaDA or LLaDA-MoE keys); absent keys take the
        defaults of the published configuration classes."""
        if not is_llada_config(config):
            raise ValueError("not a LLaDA config (model_type / architectures)")
        return cls._from_moe(config) if _is_moe_dict(config) else cls._from_dense(config)

    @classmethod
    def _from_dense(cls, c: dict) -> LLaDAConfig:
        _require(c, "block_type", ("llama",))
        _require(c, "layer_norm_type", ("rms",))
        _require(c, "activation_type", ("silu",))
        _require(c, "rope", (True,))
        _require(c, "alibi", (False,))
        _require(c, "block_group_size", (1,))
        _require(c, "layer_norm_with_affine", (True,))
        _require(c, "attention_layer_norm_with_affine", (True,))
        n_heads = int(c["n_heads"])
        n_kv_heads = c.get("n_kv_heads") or (1 if c.get("multi_query_attention") else n_heads)
        d_model = int(c["d_model"])
        include_bias = bool(c.get("include_bias", False))
        norm_bias = c.get("bias_for_layer_norm")
        vocab_size = int(c["vocab_size"])
        return cls(
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(n_kv_heads),
            n_layers=int(c["n_layers"]),
            mlp_hidden_size=int(c.get("mlp_hidden_size") or c.get("mlp_ratio", 4) * d_model),
            vocab_size=vocab_size,
            embedding_size=int(c.get("embedding_size", 50304) or vocab_size),
            rope_theta=float(c.get("rope_theta", 10000.0)),
            rotary_dim=d_model // n_heads,
            rms_norm_eps=float(c.get("rms_norm_eps", 1e-5)),
            weight_tying=bool(c.get("weight_tying", True)),
            max_sequence_length=int(c.get("max_sequence_length", 1024)),
            mask_token_id=c.get("mask_token_id"),
            eos_token_id=c.get("eos_token_id"),
            pad_token_id=c.get("pad_token_id"),
            linear_bias=include_bias,
            qkv_bias=include_bias or bool(c.get("include_qkv_bias", False)),
            norm_bias=include_bias if norm_bias is None else bool(norm_bias),
            qk_norm=bool(c.get("attention_layer_norm", False)),
            rope_full_precision=bool(c.get("rope_full_precision", True)),
            input_emb_norm=bool(c.get("input_emb_norm", False)),
            scale_logits=bool(c.get("scale_logits", False)),
        )

    @classmethod
    def _from_moe(cls, c: dict) -> LLaDAConfig:
        _require(c, "hidden_act", ("silu",))
        _require(c, "rope_scaling", (None,))
        n_heads = int(c["num_attention_heads"])
        d_model = int(c["hidden_size"])
        n_layers = int(c["num_hidden_layers"])
        partial = float(c.get("partial_rotary_factor", 1.0))
        if not 0.0 < partial <= 1.0:
            raise ValueError(f"LLaDA-MoE config partial_rotary_factor={partial} is not usable")
        moe_layer_freq = tuple(c.get("moe_layer_freq") or ())
        if len(moe_layer_freq) != n_layers:
            raise ValueError(f"LLaDA-MoE config needs moe_layer_freq with {n_layers} entries")
        vocab_size = int(c["vocab_size"])
        return cls(
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(c.get("num_key_value_heads") or n_heads),
            n_layers=n_layers,
            mlp_hidden_size=int(c.get("dense_intermediate_size", -1)),
            vocab_size=vocab_size,
            embedding_size=vocab_size,
            rope_theta=float(c["rope_theta"]),
            rotary_dim=int(d_model // n_heads * partial),
            rms_norm_eps=float(c.get("rms_norm_eps", 1e-5)),
            weight_tying=bool(c.get("tie_word_embeddings", False)),
            max_sequence_length=int(c.get("max_position_embeddings", 4096)),
            mask_token_id=c.get("mask_token_id"),
            eos_token_id=c.get("eos_token_id", 50279),
            pad_token_id=c.get("pad_token_id", 1),
            qkv_bias=bool(c.get("attention_bias", False)),
            qk_norm=bool(c.get("qk_layernorm", False)),
            clip_qkv=c.get("clip_qkv"),
            moe_layers=tuple(bool(f) for f in moe_layer_freq),
            num_experts=int(c["num_experts"]),
            num_experts_per_tok=int(c["num_experts_per_tok"]),
            expert_intermediate_size=int(c["expert_intermediate_size"]),
            shared_expert_intermediate_size=c.get("shared_expert_intermediate_size"),
            expert_bias=bool(c.get("moe_router_enable_expert_bias", False)),
        )


# --- building blocks -----------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Normalise in float32, cast back to the input dtype, then scale (and shift)."""

    def __init__(self, size: int, eps: float, bias: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        h = self.weight * h
        return h if self.bias is None else h + self.bias


class GatedMLP(nn.Module):
    """`down(silu(gate(x)) * up(x))` under the MoE names (gate_proj / up_proj / down_proj)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rotary_tables(length: int, rotary_dim: int, theta: float, device: torch.device):
    """cos and sin [length, rotary_dim] in float32, both halves repeating the frequencies."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, rotary_dim, 2, device=device, dtype=torch.float32) / rotary_dim
    )
    freqs = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on the first cos.shape[-1] dims of x [B, H, L, head_dim]."""
    rotary_dim = cos.shape[-1]
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    first, second = rot.chunk(2, dim=-1)
    rot = rot * cos + torch.cat((-second, first), dim=-1) * sin
    return torch.cat((rot, rest), dim=-1)


def key_padding_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype):
    """An additive [B, 1, 1, L] bias masking keys where attention_mask is 0; None when nothing
    is masked (then the computation is exactly the published one)."""
    if attention_mask is None or bool(attention_mask.bool().all()):
        return None
    keep = attention_mask.bool()[:, None, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def attend(q, k, v, bias: torch.Tensor | None) -> torch.Tensor:
    """Bidirectional SDPA over [B, H, L, D] with k/v heads repeated for GQA; returns [B, L, H*D]."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=False)
    return out.transpose(1, 2).flatten(2)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    batch, length, _ = x.shape
    return x.view(batch, length, n_heads, -1).transpose(1, 2)


# --- dense LLaDA ---------------------------------------------------------------------------


class DenseBlock(nn.Module):
    """LLaDA's `LLaDALlamaBlock`: pre-norm attention and a gated FFN, both residual."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kv_dim = cfg.n_kv_heads * cfg.head_dim
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, cfg.norm_bias)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, cfg.norm_bias)
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, cfg.norm_bias)
            self.k_norm = RMSNorm(kv_dim, cfg.rms_norm_eps, cfg.norm_bias)
        self.attn_out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.linear_bias)
        self.ff_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=cfg.linear_bias)
        self.up_proj = nn.Linear(cfg.d_model, cfg.mlp_hidden_size, bias=cfg.linear_bias)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, cfg.d_model, bias=cfg.linear_bias)

    def forward(self, x, rope: tuple[torch.Tensor, torch.Tensor], bias) -> torch.Tensor:
        h = self.attn_norm(x)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q).to(k.dtype), self.k_norm(k).to(k.dtype)
        q, k = split_heads(q, self.cfg.n_heads), split_heads(k, self.cfg.n_kv_heads)
        q, k = self._rotate(q, k, rope)
        x = x + self.attn_out(attend(q, k, split_heads(v, self.cfg.n_kv_heads), bias))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))

    def _rotate(self, q, k, rope):
        """In float32 when rope_full_precision (as published), else in the input dtype."""
        dtype = torch.float32 if self.cfg.rope_full_precision else q.dtype
        cos, sin = (t.to(dtype) for t in rope)
        q_rot = apply_rotary(q.to(dtype), cos, sin).to(q.dtype)
        return q_rot, apply_rotary(k.to(dtype), cos, sin).to(k.dtype)


class DenseBackbone(nn.Module):
    """Holds `transformer` so that parameter names read `model.transformer.…`."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        modules: dict[str, nn.Module] = {
            "wte": nn.Embedding(cfg.embedding_size, cfg.d_model),
            "blocks": nn.ModuleList(DenseBlock(cfg) for _ in range(cfg.n_layers)),
            "ln_f": RMSNorm(cfg.d_model, cfg.rms_norm_eps, cfg.norm_bias),
        }
        if not cfg.weight_tying:
            modules["ff_out"] = nn.Linear(cfg.d_model, cfg.embedding_size, bias=cfg.linear_bias)
        self.transformer = nn.ModuleDict(modules)


# --- LLaDA-MoE -----------------------------------------------------------------------------


class MoeAttention(nn.Module):
    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kv_dim = cfg.n_kv_heads * cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, kv_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.qkv_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)

    def forward(self, x, rope: tuple[torch.Tensor, torch.Tensor], bias) -> torch.Tensor:
        q = split_heads(self.q_proj(x), self.cfg.n_heads)
        k = split_heads(self.k_proj(x), self.cfg.n_kv_heads)
        v = split_heads(self.v_proj(x), self.cfg.n_kv_heads)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.cfg.clip_qkv is not None:
            q, k, v = (t.clamp(-self.cfg.clip_qkv, self.cfg.clip_qkv) for t in (q, k, v))
        cos, sin = (t.to(x.dtype) for t in rope)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return self.o_proj(attend(q, k, v, bias))


class SparseMoe(nn.Module):
    """Softmax router (float32), optional additive expert bias, top-k, unnormalised weights."""

    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.top_k = cfg.num_experts_per_tok
        self.gate = nn.Linear(cfg.d_model, cfg.num_experts, bias=False)
        self.experts = nn.ModuleList(
            GatedMLP(cfg.d_model, cfg.expert_intermediate_size) for _ in range(cfg.num_experts)
        )
        if cfg.expert_bias:
            self.register_buffer("expert_bias", torch.zeros(cfg.num_experts))
        else:
            self.expert_bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        probs = F.softmax(self.gate(flat), dim=-1, dtype=torch.float32)
        if self.expert_bias is not None:
            probs = probs + self.expert_bias
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights.to(flat.dtype)
        out = torch.zeros_like(flat)
        for index, expert in enumerate(self.experts):
            tokens, slot = torch.where(chosen == index)
            if tokens.numel():
                out.index_add_(0, tokens, expert(flat[tokens]) * weights[tokens, slot, None])
        return out.view_as(x)


class MoeLayer(nn.Module):
    def __init__(self, cfg: LLaDAConfig, moe: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.self_attn = MoeAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.mlp = SparseMoe(cfg) if moe else GatedMLP(cfg.d_model, cfg.mlp_hidden_size)
        shared = cfg.shared_expert_intermediate_size
        self.shared_expert = GatedMLP(cfg.d_model, shared) if moe and shared is not None else None

    def forward(self, x, rope: tuple[torch.Tensor, torch.Tensor], bias) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, bias)
        h = self.post_attention_layernorm(x)
        out = self.mlp(h)
        if self.shared_expert is not None:
            out = out + self.shared_expert(h)
        return x + out


class MoeBackbone(nn.Module):
    def __init__(self, cfg: LLaDAConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.embedding_size, cfg.d_model)
        self.layers = nn.ModuleList(MoeLayer(cfg, moe) for moe in cfg.moe_layers)
        self.norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)


# --- the model -----------------------------------------------------------------------------


class LLaDAModel(nn.Module):
    """Dense LLaDA or LLaDA-MoE, with the published parameter names.

    `forward` returns the hidden states after the final norm; `head` maps them to logits over
    `embedding_size` ids (as the published code does; equal to `vocab_size` for the published
    checkpoints); `logits` runs the head only at the requested positions.
    """

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.config = config
        if config.is_moe:
            self.model = MoeBackbone(config)
            if not config.weight_tying:
                self.lm_head = nn.Linear(config.d_model, config.embedding_size, bias=False)
        else:
            self.model = DenseBackbone(config)

    def _embedding(self) -> nn.Embedding:
        return self.model.embed_tokens if self.config.is_moe else self.model.transformer.wte

    def _layers(self) -> nn.ModuleList:
        return self.model.layers if self.config.is_moe else self.model.transformer.blocks

    def _final_norm(self) -> RMSNorm:
        return self.model.norm if self.config.is_moe else self.model.transformer.ln_f

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden states [B, L, d_model] after the final norm. Positions are 0..L-1 in every row,
        so padding goes on the right; keys where attention_mask is 0 are not attended to."""
        x = self._embedding()(input_ids)
        if self.config.input_emb_norm:
            x = x * self.config.d_model**0.5
        rope = rotary_tables(
            input_ids.shape[1], self.config.rotary_dim, self.config.rope_theta, x.device
        )
        bias = key_padding_bias(attention_mask, x.dtype)
        for layer in self._layers():
            x = layer(x, rope, bias)
        return self._final_norm()(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [..., embedding_size] from final hidden states."""
        if self.config.weight_tying:
            logits = F.linear(hidden, self._embedding().weight)
        else:
            logits = (self.lm_head if self.config.is_moe else self.model.transformer.ff_out)(hidden)
        if self.config.scale_logits:
            logits = logits / math.sqrt(self.config.d_model)
        return logits

    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """Logits [N, V] at the True entries of positions [B, L], in row-major order."""
        return self.head(self.forward(input_ids, attention_mask)[positions])


# --- loading -------------------------------------------------------------------------------


def read_config(folder: str | Path) -> LLaDAConfig:
    return LLaDAConfig.from_dict(json.loads((Path(folder) / "config.json").read_text()))


def load_llada(folder: str | Path, *, dtype: torch.dtype, device: torch.device) -> LLaDAModel:
    """Build from config.json on the meta device, load model.safetensors (or the shards of
    model.safetensors.index.json) with strict name and shape checks, cast, move, eval."""
    folder = Path(folder)
    config = read_config(folder)
    with torch.device("meta"):
        model = LLaDAModel(config)
    load_checkpoint(model, folder, architecture="LLaDA", dtype=dtype, device=device)
    return model.to(device=device, dtype=dtype)


# --- tokenizer and ids ---------------------------------------------------------------------


def load_llada_tokenizer(folder: str | Path):
    """The published tokenizer files (tokenizer.json + tokenizer_config.json, class
    `PreTrainedTokenizerFast`) loaded without trust_remote_code."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


@dataclass(frozen=True)
class LLaDATokenIds:
    mask: int
    eos: int | None
    end_of_turn: int | None
    pad: int | None

    @classmethod
    def resolve(cls, config: LLaDAConfig, tokenizer) -> LLaDATokenIds:
        """Config keys first, the tokenizer second (mask and end-of-turn by their published
        token strings when the config has no key for them)."""
        mask_token, eot_token = (
            (MOE_MASK_TOKEN, MOE_END_OF_TURN_TOKEN)
            if config.is_moe
            else (DENSE_MASK_TOKEN, DENSE_END_OF_TURN_TOKEN)
        )
        mask = _first(config.mask_token_id, _token_id(tokenizer, mask_token))
        if mask is None:
            raise ValueError(f"no mask id: config has no mask_token_id, tokenizer no {mask_token}")
        return cls(
            mask=mask,
            eos=_first(config.eos_token_id, tokenizer.eos_token_id),
            end_of_turn=_token_id(tokenizer, eot_token),
            pad=_first(config.pad_token_id, tokenizer.pad_token_id),
        )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _token_id(tokenizer, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    return None if token_id is None or token_id == tokenizer.unk_token_id else int(token_id)
