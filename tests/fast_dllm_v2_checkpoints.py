"""Tiny random Fast-dLLM v2 checkpoints laid out exactly like the published folder.

Efficient-Large-Model/Fast_dLLM_v2_7B ships (copied in Satgoy152/DualDiffusion
`FastDLLM_inferencing/Fast_dLLM_v2_7B/`): config.json (model_type "Fast_dLLM_Qwen", architectures
["Fast_dLLM_QwenForCausalLM"], auto_map to configuration.py / modeling.py, `bd_size`, every
`layer_types` entry "full_attention", no `mask_token_id`, no `head_dim`), sharded safetensors with
`model.safetensors.index.json` under the Qwen2 names (q/k/v biases, no o_proj bias, no q/k norms),
a Qwen2 byte-level BPE tokenizer (vocab.json, merges.txt, added_tokens.json ending with
`|<MASK>|`, special_tokens_map.json with `|<MASK>|` as its one additional special token and
`<|im_end|>` as EOS, tokenizer_config.json with `tokenizer_class` "Qwen2Tokenizer" and no
auto_map), chat_template.jinja and generation_config.json. These helpers write the same files
at toy sizes: 2 layers, hidden 64, 4 query heads sharing 2 key/value heads, blocks of 4 (the
published `bd_size` is 32), the specials after the regular ids and the embedding padded past
them. Remote-code files are stubs that raise if anything imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sdar_checkpoints import (
    CHAT_TEMPLATE,
    MERGES,
    added_token,
    byte_symbols,
    write_json,
    write_weights,
)

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "|<MASK>|")
BASE_VOCAB = 256 + len(MERGES)
ENDOFTEXT_ID, IM_START_ID, IM_END_ID, MASK_ID = range(BASE_VOCAB, BASE_VOCAB + len(SPECIAL_TOKENS))
MASK_TOKEN = "|<MASK>|"
VOCAB_SIZE = 296  # padded past the 267 tokenizer entries, like 152064 past 151666
BLOCK_SIZE = 4

TINY_FAST_DLLM_V2_CONFIG: dict[str, Any] = {
    "architectures": ["Fast_dLLM_QwenForCausalLM"],
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration.Fast_dLLM_QwenConfig",
        "AutoModel": "modeling.Fast_dLLM_QwenModel",
        "AutoModelForCausalLM": "modeling.Fast_dLLM_QwenForCausalLM",
    },
    "bd_size": BLOCK_SIZE,
    "bos_token_id": ENDOFTEXT_ID,
    "conplemenrary_mask": True,  # sic, as published
    "eos_token_id": IM_END_ID,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "layer_types": ["full_attention", "full_attention"],
    "max_position_embeddings": 512,
    "max_window_layers": 2,
    "model_type": "Fast_dLLM_Qwen",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pad_token_id": IM_END_ID,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.53.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": VOCAB_SIZE,
}

_REMOTE_CODE_STUB = 'raise RuntimeError("remote code must not run in these tests")\n'


def fast_dllm_v2_parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published tensor names and shapes for a Fast-dLLM v2 config.json."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    kv_width = config["num_key_value_heads"] * hidden // config["num_attention_heads"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config["vocab_size"], hidden)
    }
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        shapes |= {
            prefix + "input_layernorm.weight": (hidden,),
            prefix + "post_attention_layernorm.weight": (hidden,),
            prefix + "self_attn.q_proj.weight": (hidden, hidden),
            prefix + "self_attn.q_proj.bias": (hidden,),
            prefix + "self_attn.k_proj.weight": (kv_width, hidden),
            prefix + "self_attn.k_proj.bias": (kv_width,),
            prefix + "self_attn.v_proj.weight": (kv_width, hidden),
            prefix + "self_attn.v_proj.bias": (kv_width,),
            prefix + "self_attn.o_proj.weight": (hidden, hidden),
            prefix + "mlp.gate_proj.weight": (inner, hidden),
            prefix + "mlp.up_proj.weight": (inner, hidden),
            prefix + "mlp.down_proj.weight": (hidden, inner),
        }
    shapes["model.norm.weight"] = (hidden,)
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (config["vocab_size"], hidden)
    return shapes


def random_fast_dllm_v2_tensors(
    config: dict[str, Any], seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in fast_dllm_v2_parameter_shapes(config).items():
        noise = torch.randn(shape, generator=generator)
        if "norm" in name:
            value = 1.0 + 0.1 * noise
        elif "embed_tokens" in name:
            value = 0.5 * noise
        elif "lm_head" in name:
            value = 0.1 * noise
        else:
            value = (0.1 if name.endswith("bias") else 0.15) * noise
        tensors[name] = value.to(dtype).contiguous()
    return tensors


def write_fast_dllm_v2_tokenizer(folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())}
    vocab |= {left + right: 256 + i for i, (left, right) in enumerate(MERGES)}
    write_json(folder / "vocab.json", vocab)
    merges = "".join(f"{left} {right}\n" for left, right in MERGES)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    added = {token: BASE_VOCAB + i for i, token in enumerate(SPECIAL_TOKENS)}
    write_json(folder / "added_tokens.json", added)

    def described(token: str) -> dict[str, Any]:
        return {k: v for k, v in added_token(token, True).items() if k != "special"}

    write_json(
        folder / "special_tokens_map.json",
        {
            "additional_special_tokens": [described(MASK_TOKEN)],
            "eos_token": described("<|im_end|>"),
            "pad_token": described("<|endoftext|>"),
        },
    )
    write_json(
        folder / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": {str(i): added_token(t, True) for t, i in added.items()},
            "additional_special_tokens": [MASK_TOKEN],
            "bos_token": None,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "extra_special_tokens": {},
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "padding_side": "right",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return folder


def write_fast_dllm_v2_checkpoint(
    folder: str | Path,
    *,
    seed: int = 0,
    shards: int = 2,
    dtype: torch.dtype = torch.bfloat16,
    config_overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """A complete tiny Fast-dLLM v2 folder (see `write_sdar_checkpoint` for the arguments)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = TINY_FAST_DLLM_V2_CONFIG | (config_overrides or {})
    write_json(folder / "config.json", config)
    tensors = {
        name: tensor
        for name, tensor in random_fast_dllm_v2_tensors(config, seed, dtype).items()
        if name not in drop
    }
    write_weights(folder, tensors | (extra or {}), shards)
    write_json(
        folder / "generation_config.json",
        {
            "bos_token_id": ENDOFTEXT_ID,
            "do_sample": True,
            "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
            "pad_token_id": ENDOFTEXT_ID,
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_k": 20,
            "top_p": 0.8,
            "transformers_version": "4.53.1",
        },
    )
    write_fast_dllm_v2_tokenizer(folder)
    for name in ("configuration.py", "modeling.py"):
        (folder / name).write_text(_REMOTE_CODE_STUB, encoding="utf-8")
    return folder
