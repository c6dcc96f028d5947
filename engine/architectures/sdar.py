"""SDAR (JetLM/SDAR-1.7B-Chat, SDAR-4B-Chat, SDAR-8B-Chat) without `trust_remote_code`.

SDAR is a Qwen3 decoder turned into a block diffusion model: attention is causal between blocks
of `block_size` tokens and bidirectional inside a block, so a token in block b sees every token of
blocks < b and all of block b. Keys and values of a finished block therefore never change, which
is what the exact KV cache of `engine/block_causal.py` relies on. This module reads the published
`config.json` keys into the shared network of `engine/architectures/block_causal_lm.py` (our own
plain torch implementation) and loads the published safetensors by their published names.

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

Checked (one-off, outside the repo) against the authors' `SDARForCausalLM`, patched only where
transformers 5 breaks it (LossKwargs, the "default" RoPE init, DynamicCache indexing) and with
torch stand-ins for flash-attn's `rms_norm_fn` and `flash_attn_func`, driven by `generate.py`'s
loop on the tiny checkpoints of tests/sdar_checkpoints.py: logits at every masked position of
every step within 1.3e-6 in float32 (also with `attention_bias` and block 8), 0.035 in bfloat16
(where our own bfloat16 and float32 passes differ by 0.032).

Where we differ on purpose: `forward_block` takes right-padded ragged rows (the authors' sampler
runs one row); padding keys are masked. Only unscaled RoPE, `hidden_act` "silu" and full
attention are built; anything else is refused with a ValueError. The MoE SDAR-30B-A3B (another
model class) is not built. Nothing here imports transformers except the tokenizer loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.architectures.block_causal_lm import (
    BlockCausalConfig,
    BlockCausalLM,
    check_supported,
    load_block_causal,
    load_qwen2_tokenizer,
    read_json,
    rope_theta_of,
)

SDAR_MODEL_TYPE = "sdar"
SDAR_ARCHITECTURE = "SDARForCausalLM"
SDAR_MASK_TOKENS = ("<|MASK|>", "<MASK>")  # tokenizer_config.json, added_tokens.json
DEFAULT_BLOCK_SIZE = 4  # the default SDAR models; variants publish 8, 16, 32 and 64


def is_sdar_config(config: dict[str, Any]) -> bool:
    """True for a parsed config.json of SDAR: `model_type` "sdar" or `architectures` naming
    `SDARForCausalLM`."""
    architectures = config.get("architectures") or []
    model_type = str(config.get("model_type", "")).lower()
    return model_type == SDAR_MODEL_TYPE or SDAR_ARCHITECTURE in architectures


def sdar_config(config: dict[str, Any]) -> BlockCausalConfig:
    """The network of a parsed SDAR config.json; missing keys take the authors' SDARConfig
    defaults (head_dim 128 is a key of its own, not hidden / heads)."""
    check_supported(config, "SDAR")
    heads = config.get("num_attention_heads", 32)
    return BlockCausalConfig(
        vocab_size=config.get("vocab_size", 151936),
        hidden_size=config.get("hidden_size", 4096),
        intermediate_size=config.get("intermediate_size", 22016),
        num_hidden_layers=config.get("num_hidden_layers", 32),
        num_attention_heads=heads,
        num_key_value_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or 128,
        block_size=config.get("block_size") or DEFAULT_BLOCK_SIZE,
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta_of(config, 10000.0),
        qkv_bias=bool(config.get("attention_bias", False)),
        o_bias=bool(config.get("attention_bias", False)),
        qk_norm=True,
        norm_in_float32=True,
        logit_shift=0,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def read_sdar_config(folder: str | Path) -> BlockCausalConfig:
    return sdar_config(read_json(Path(folder) / "config.json"))


def load_sdar(folder: str | Path, *, dtype: torch.dtype, device: torch.device) -> BlockCausalLM:
    """A published SDAR folder (config.json plus `model.safetensors` or the shards of
    `model.safetensors.index.json`) as an eval-mode BlockCausalLM in `dtype` on `device`, built on
    the meta device; tensor names and shapes are checked strictly (ValueError)."""
    config = read_sdar_config(folder)
    return load_block_causal(folder, config, family="SDAR", dtype=dtype, device=device)


def load_sdar_tokenizer(folder: str | Path):
    """The published Qwen2 tokenizer of an SDAR folder, without its remote
    `tokenization_qwen2.py`; the mask token is config.json's `mask_token_id` (151669)."""
    config_path = Path(folder) / "config.json"
    mask_id = read_json(config_path).get("mask_token_id") if config_path.is_file() else None
    return load_qwen2_tokenizer(folder, mask_id, SDAR_MASK_TOKENS)
