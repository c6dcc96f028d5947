"""Tiny random Dream checkpoints laid out exactly like the published hub folders.

Dream-v0-Instruct-7B and Dream-Coder-v0-Instruct-7B ship: config.json (model_type "Dream",
architectures ["DreamModel"], auto_map to their own configuration/modelling code), sharded
safetensors with a `model.safetensors.index.json`, and a slow byte-level BPE tokenizer (vocab.json,
merges.txt, added_tokens.json, special_tokens_map.json, tokenizer_config.json naming
`DreamTokenizer` through auto_map to tokenization_dream.py). These helpers write the same files
at toy sizes: 2 layers, hidden 64, 4 query heads sharing 2 key/value heads, a vocabulary of a few
hundred ids with the special tokens right after the regular ones and the embedding padded past
them, as published. The weights are random tensors written with safetensors directly, by name and
shape, with no reference to our DreamModel. The remote-code files are stubs that raise when
imported, so a test passes only if nothing executes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sdar_checkpoints import added_token, byte_symbols, write_json, write_weights

# Byte-level BPE: ids 0..255 are the 256 byte symbols, then these merges, then the added tokens.
MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "c"), ("o", "n"))
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>")
BASE_VOCAB = 256 + len(MERGES)
ENDOFTEXT_ID, IM_START_ID, IM_END_ID, BEGINOFTEXT_ID, MASK_ID = range(
    BASE_VOCAB, BASE_VOCAB + len(SPECIAL_TOKENS)
)
VOCAB_SIZE = 288  # padded past the 268 tokenizer entries, like 152064 past 151667

TINY_DREAM_CONFIG: dict[str, Any] = {
    "architectures": ["DreamModel"],
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_dream.DreamConfig",
        "AutoModel": "modeling_dream.DreamModel",
    },
    "bos_token_id": BEGINOFTEXT_ID,
    "eos_token_id": ENDOFTEXT_ID,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "mask_token_id": MASK_ID,
    "max_position_embeddings": 256,
    "max_window_layers": 2,
    "model_type": "Dream",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pad_token_id": ENDOFTEXT_ID,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.46.2",
    "use_cache": False,
    "use_sliding_window": False,
    "vocab_size": VOCAB_SIZE,
}

# Qwen2.5-style turns, as Dream's chat template: a default system turn, <|im_start|>role ...
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_REMOTE_CODE_STUB = 'raise RuntimeError("remote code must not run in these tests")\n'
_REMOTE_CODE_FILES = (
    "configuration_dream.py",
    "modeling_dream.py",
    "generation_utils.py",
    "tokenization_dream.py",
)


def dream_parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published tensor names and shapes for a Dream config.json."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    head_dim = hidden // config["num_attention_heads"]
    kv_width = config["num_key_value_heads"] * head_dim
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


def random_dream_tensors(
    config: dict[str, Any], seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    """Random weights under the published names: norms near 1, embeddings and matrices large
    enough (std 0.1 to 0.5) that attention patterns differ clearly between positions, and a head
    scaled for logits of unit size."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in dream_parameter_shapes(config).items():
        noise = torch.randn(shape, generator=generator)
        if "norm" in name:
            value = 1.0 + 0.1 * noise
        elif "embed_tokens" in name:
            value = 0.5 * noise
        elif "lm_head" in name:
            value = 0.1 * noise  # logits of unit scale
        else:
            value = (0.1 if name.endswith("bias") else 0.15) * noise
        tensors[name] = value.to(dtype).contiguous()
    return tensors


def write_dream_tokenizer(folder: str | Path) -> Path:
    """The published tokenizer files: vocab.json, merges.txt, added_tokens.json,
    special_tokens_map.json and a tokenizer_config.json naming DreamTokenizer via auto_map."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())}
    vocab |= {left + right: 256 + i for i, (left, right) in enumerate(MERGES)}
    write_json(folder / "vocab.json", vocab)
    merges = "".join(f"{left} {right}\n" for left, right in MERGES)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    added = {token: BASE_VOCAB + i for i, token in enumerate(SPECIAL_TOKENS)}
    write_json(folder / "added_tokens.json", added)
    write_json(
        folder / "special_tokens_map.json",
        {
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": "<|beginoftext|>",
            "eos_token": "<|endoftext|>",
            "mask_token": "<|mask|>",
            "pad_token": "<|endoftext|>",
        },
    )
    write_json(
        folder / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "added_tokens_decoder": {str(i): added_token(t, True) for t, i in added.items()},
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
            "bos_token": "<|beginoftext|>",
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "errors": "replace",
            "mask_token": "<|mask|>",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "DreamTokenizer",
            "unk_token": None,
        },
    )
    return folder


def write_dream_checkpoint(
    folder: str | Path,
    *,
    seed: int = 0,
    shards: int = 1,
    dtype: torch.dtype = torch.bfloat16,
    config_overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """A complete tiny Dream folder: config.json, weights (`shards` > 1 writes the sharded layout
    with its index), tokenizer files, generation_config.json and the remote-code stubs. `drop`
    leaves the named tensors out (to test strict loading)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = TINY_DREAM_CONFIG | (config_overrides or {})
    write_json(folder / "config.json", config)
    tensors = {
        name: tensor
        for name, tensor in random_dream_tensors(config, seed, dtype).items()
        if name not in drop
    }
    write_weights(folder, tensors, shards)
    write_json(
        folder / "generation_config.json",
        {
            "_from_model_config": True,
            "alg": "origin",
            "alg_temp": None,
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": config["eos_token_id"],
            "eps": 0.001,
            "mask_token_id": None,
            "output_history": False,
            "pad_token_id": config["pad_token_id"],
            "steps": 512,
            "temperature": 0.0,
            "top_k": None,
            "top_p": None,
            "transformers_version": "4.46.2",
        },
    )
    for name in _REMOTE_CODE_FILES:
        (folder / name).write_text(_REMOTE_CODE_STUB, encoding="utf-8")
    write_dream_tokenizer(folder)
    return folder
