"""Fast-dLLM v2 (Efficient-Large-Model/Fast_dLLM_v2_7B) without `trust_remote_code`.

Fast-dLLM v2 fine-tunes Qwen2.5-7B-Instruct into a block diffusion model: causal between blocks
of `bd_size` (32) tokens, bidirectional inside one, blocks counted from position 0, with a token
shift (the logit for position i is read from the hidden state at i - 1, as the AR model it came
from). This module reads the published `config.json` keys into the shared network of
`engine/architectures/block_causal_lm.py` and loads the published safetensors by their names.

Read from the authors' files (December 2026): the hub folder's `modeling.py`, `configuration.py`,
`config.json`, `generation_config.json`, `tokenizer_config.json`, `special_tokens_map.json`,
`added_tokens.json` and `model.safetensors.index.json` as copied into
Satgoy152/DualDiffusion (`FastDLLM_inferencing/Fast_dLLM_v2_7B/`, its first commit, whose only
visible change is a step-count argument to `generate`), and NVlabs/Fast-dLLM `v2/run_chatbot.py`.
Facts used:

- config.json: model_type "Fast_dLLM_Qwen", architectures ["Fast_dLLM_QwenForCausalLM"],
  auto_map to configuration.Fast_dLLM_QwenConfig / modeling.Fast_dLLM_QwenModel /
  modeling.Fast_dLLM_QwenForCausalLM, `bd_size` 32, hidden 3584, 28 layers, 28 heads, 4 kv
  heads, intermediate 18944, rope_theta 1e6, rope_scaling null, rms_norm_eps 1e-6, every
  `layer_types` entry "full_attention", tie_word_embeddings false, vocab 152064, eos = pad
  151645 `<|im_end|>`, bos 151643; no `mask_token_id` and no `head_dim` key (head_dim is
  hidden / heads); generation_config eos [151645, 151643], pad 151643.
- names (the Qwen2 layout): q/k/v projections with biases, `o_proj` without, no q/k norms,
  `mlp.{gate,up,down}_proj`, `input_layernorm`, `post_attention_layernorm`, `model.norm`,
  untied `lm_head`. RMSNorm is Hugging Face's Qwen2 one: normalise in float32, cast to the
  input dtype, then multiply by the weight. RoPE is the default one over absolute positions.
- inference mask (`eval_block_diff_mask`): query block >= key block, with query positions offset
  by the cache length; the prompt's whole blocks are prefilled with it, so the prompt is
  block-causal too; a new block is the prompt's tail plus masks up to the next multiple of 32.
- token shift: `generate` turns a block's logits into `cat(logits[:, :1], logits[:, :-1])`, and
  fills a block's first token with the argmax of the previous (finished) block's last logit, so
  every position i reads the hidden state at i - 1. Training uses the Hugging Face causal-LM
  loss (labels shifted by one) on the same layout.
- mask `|<MASK>|` 151665 (`added_tokens.json`, an additional special token of the tokenizer;
  `generate` defaults `mask_id=151665`), stop token 151645.
- recipe (`run_chatbot.py`): block_size 32, small_block_size 8, threshold 0.9; in each
  sub-block of 8, commit every mask whose greedy probability exceeds the threshold, and always
  the most probable one (temperature 0 by default in `generate`).

Checked (one-off, outside the repo) against that `modeling.py`, patched only where transformers 5
breaks it (the "default" RoPE init, DynamicCache indexing), driven by its `generate` loop
(blocks of 8, sub-blocks of 4) on the tiny checkpoints of tests/fast_dllm_v2_checkpoints.py:
logits at every masked position of every step within 1.4e-6 in float32, and the block-start AR
logits within 1e-6; 0.047 in bfloat16.

Where we differ on purpose: a block's first position, when it is still a mask, gets its logit
from the hidden state before it (the authors' AR step reads the same state from the previous
block's last position; their in-block shift would give it its own logit, a case their loop never
reaches). Right-padded ragged rows are supported; padding keys are masked. The approximate
sub-block cache (`use_block_cache`) is not built: the cache here is the exact block-level one.
Only full attention, unscaled RoPE and SiLU are built; anything else is refused (ValueError).
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

FAST_DLLM_V2_MODEL_TYPE = "fast_dllm_qwen"  # config.json says "Fast_dLLM_Qwen"
FAST_DLLM_V2_ARCHITECTURE = "Fast_dLLM_QwenForCausalLM"
FAST_DLLM_V2_MASK_TOKENS = ("|<MASK>|",)
DEFAULT_BLOCK_SIZE = 32


def is_fast_dllm_v2_config(config: dict[str, Any]) -> bool:
    """True for a parsed config.json of Fast-dLLM v2: `model_type` "Fast_dLLM_Qwen" (any case)
    or `architectures` naming `Fast_dLLM_QwenForCausalLM`."""
    architectures = config.get("architectures") or []
    model_type = str(config.get("model_type", "")).lower()
    return model_type == FAST_DLLM_V2_MODEL_TYPE or FAST_DLLM_V2_ARCHITECTURE in architectures


def fast_dllm_v2_config(config: dict[str, Any]) -> BlockCausalConfig:
    """The network of a parsed Fast-dLLM v2 config.json; missing keys take the authors'
    Fast_dLLM_QwenConfig defaults."""
    check_supported(config, "Fast-dLLM v2")
    hidden = config.get("hidden_size", 4096)
    heads = config.get("num_attention_heads", 32)
    if hidden % heads:
        raise ValueError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    return BlockCausalConfig(
        vocab_size=config.get("vocab_size", 151936),
        hidden_size=hidden,
        intermediate_size=config.get("intermediate_size", 22016),
        num_hidden_layers=config.get("num_hidden_layers", 32),
        num_attention_heads=heads,
        num_key_value_heads=config.get("num_key_value_heads") or heads,
        head_dim=hidden // heads,
        block_size=config.get("bd_size") or DEFAULT_BLOCK_SIZE,
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta_of(config, 10000.0),
        qkv_bias=True,
        o_bias=False,
        qk_norm=False,
        norm_in_float32=False,
        logit_shift=1,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def read_fast_dllm_v2_config(folder: str | Path) -> BlockCausalConfig:
    return fast_dllm_v2_config(read_json(Path(folder) / "config.json"))


def load_fast_dllm_v2(
    folder: str | Path, *, dtype: torch.dtype, device: torch.device
) -> BlockCausalLM:
    """A published Fast-dLLM v2 folder as an eval-mode BlockCausalLM in `dtype` on `device`,
    built on the meta device; tensor names and shapes are checked strictly (ValueError)."""
    config = read_fast_dllm_v2_config(folder)
    return load_block_causal(folder, config, family="Fast-dLLM v2", dtype=dtype, device=device)


def load_fast_dllm_v2_tokenizer(folder: str | Path):
    """The published Qwen2 tokenizer of a Fast-dLLM v2 folder, without remote code; the mask is
    `|<MASK>|` (config.json names none), or config.json's `mask_token_id` if a re-save adds it."""
    config_path = Path(folder) / "config.json"
    mask_id = read_json(config_path).get("mask_token_id") if config_path.is_file() else None
    return load_qwen2_tokenizer(folder, mask_id, FAST_DLLM_V2_MASK_TOKENS)
