"""Tiny random SDAR checkpoints laid out exactly like the published folders.

JetLM/SDAR-4B-Chat and SDAR-8B-Chat (copies in JetAstra/SDAR `training/model/`) ship:
config.json (model_type "sdar", architectures ["SDARForCausalLM"], auto_map to
configuration_sdar / modeling_sdar, `block_size`, `mask_token_id`, an explicit `head_dim`),
sharded safetensors with `model.safetensors.index.json` under the Qwen3 names, a Qwen2
byte-level BPE tokenizer (vocab.json, merges.txt, added_tokens.json, special_tokens_map.json,
tokenizer_config.json with `tokenizer_class` "Qwen2Tokenizer", auto_map to their own
tokenization_qwen2.py, `mask_token` "<|MASK|>"; added_tokens.json spells that id "<MASK>"),
chat_template.jinja and generation_config.json (eos [<|im_end|>, <|endoftext|>]). These helpers
write the same files at toy sizes: 2 layers, hidden 64, 4 query heads of head_dim 32 (not
hidden / heads, as in Qwen3) sharing 2 key/value heads, blocks of 4, a vocabulary of a few
hundred ids with the specials after the regular ones and the embedding padded past them. The
weights are random tensors written by name and shape with no reference to our SDARModel; the
remote-code files are stubs that raise if anything imports them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "c"), ("o", "n"))
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
BASE_VOCAB = 256 + len(MERGES)
ENDOFTEXT_ID, IM_START_ID, IM_END_ID, THINK_ID, END_THINK_ID = range(
    BASE_VOCAB, BASE_VOCAB + len(SPECIAL_TOKENS)
)
MASK_ID = BASE_VOCAB + len(SPECIAL_TOKENS)  # "<|MASK|>", the last added token, as published
MASK_TOKEN = "<|MASK|>"
VOCAB_SIZE = 288  # padded past the 269 tokenizer entries, like 151936 past 151670
BLOCK_SIZE = 4

TINY_SDAR_CONFIG: dict[str, Any] = {
    "architectures": ["SDARForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_sdar.SDARConfig",
        "AutoModel": "modeling_sdar.SDARModel",
        "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
    },
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_implementation": "flex_attention",
    "bos_token_id": ENDOFTEXT_ID,
    "debug": False,
    "eos_token_id": ENDOFTEXT_ID,
    "block_size": BLOCK_SIZE,
    "mask_token_id": MASK_ID,
    "ep_size": 1,
    "fuse_cross_entropy": True,
    "head_dim": 32,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "max_window_layers": 2,
    "micro_forward": False,
    "model_type": "sdar",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "skip_checkpoint": False,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.52.4",
    "use_cache": False,
    "use_deepep": False,
    "use_sliding_window": False,
    "vocab_size": VOCAB_SIZE,
}

# The Qwen3 chat template of the published folders, reduced to plain turns.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_REMOTE_CODE_STUB = 'raise RuntimeError("remote code must not run in these tests")\n'
_REMOTE_CODE_FILES = (
    "configuration_sdar.py",
    "modeling_sdar.py",
    "fused_linear_diffusion_cross_entropy.py",
    "tokenization_qwen2.py",
    "tokenization_qwen2_fast.py",
)


def sdar_parameter_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published tensor names and shapes for an SDAR config.json."""
    hidden, inner, head_dim = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q_width = config["num_attention_heads"] * head_dim
    kv_width = config["num_key_value_heads"] * head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config["vocab_size"], hidden)
    }
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        projections = {
            "q_proj": (q_width, hidden),
            "k_proj": (kv_width, hidden),
            "v_proj": (kv_width, hidden),
            "o_proj": (hidden, q_width),
        }
        for name, shape in projections.items():
            shapes[f"{prefix}self_attn.{name}.weight"] = shape
            if config.get("attention_bias"):
                shapes[f"{prefix}self_attn.{name}.bias"] = (shape[0],)
        shapes |= {
            prefix + "input_layernorm.weight": (hidden,),
            prefix + "post_attention_layernorm.weight": (hidden,),
            prefix + "self_attn.q_norm.weight": (head_dim,),
            prefix + "self_attn.k_norm.weight": (head_dim,),
            prefix + "mlp.gate_proj.weight": (inner, hidden),
            prefix + "mlp.up_proj.weight": (inner, hidden),
            prefix + "mlp.down_proj.weight": (hidden, inner),
        }
    shapes["model.norm.weight"] = (hidden,)
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (config["vocab_size"], hidden)
    return shapes


def random_sdar_tensors(
    config: dict[str, Any], seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    """Random weights under the published names, large enough that attention differs clearly
    between positions and logits are of unit size."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in sdar_parameter_shapes(config).items():
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


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_weights(folder: Path, tensors: dict[str, torch.Tensor], shards: int) -> None:
    """`model.safetensors`, or shards model-0000k-of-0000n.safetensors plus the index."""
    metadata = {"format": "pt"}
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"), metadata=metadata)
        return
    names = list(tensors)
    weight_map = {}
    for k in range(shards):
        filename = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: tensors[name] for name in names[k::shards]}
        save_file(part, str(folder / filename), metadata=metadata)
        weight_map |= dict.fromkeys(part, filename)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(
        folder / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )


def byte_symbols() -> list[str]:
    """GPT-2's reversible byte-to-unicode table, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def added_token(content: str, special: bool) -> dict[str, Any]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": special,
    }


def write_sdar_tokenizer(folder: str | Path) -> Path:
    """vocab.json, merges.txt, added_tokens.json, special_tokens_map.json, tokenizer_config.json
    and chat_template.jinja with the published special tokens (think tags and the mask are not
    `special` in tokenizer_config; the mask is an additional special token)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())}
    vocab |= {left + right: 256 + i for i, (left, right) in enumerate(MERGES)}
    write_json(folder / "vocab.json", vocab)
    merges = "".join(f"{left} {right}\n" for left, right in MERGES)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    added = {token: BASE_VOCAB + i for i, token in enumerate(SPECIAL_TOKENS)}
    write_json(folder / "added_tokens.json", added | {"<MASK>": MASK_ID})
    decoder = {str(i): added_token(t, special=not t.endswith("think>")) for t, i in added.items()}
    decoder[str(MASK_ID)] = added_token(MASK_TOKEN, special=False)
    additional = ["<|im_start|>", "<|im_end|>", MASK_TOKEN]
    eos = {
        key: value for key, value in added_token("<|endoftext|>", True).items() if key != "special"
    }
    write_json(
        folder / "special_tokens_map.json",
        {
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<MASK>"],
            "eos_token": eos,
            "pad_token": eos,
        },
    )
    write_json(
        folder / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": additional,
            "auto_map": {"AutoTokenizer": ["tokenization_qwen2.Qwen2Tokenizer", None]},
            "bos_token": None,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "mask_token": MASK_TOKEN,
            "errors": "replace",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return folder


def write_sdar_checkpoint(
    folder: str | Path,
    *,
    seed: int = 0,
    shards: int = 2,
    dtype: torch.dtype = torch.bfloat16,
    config_overrides: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """A complete tiny SDAR folder: config.json, weights (sharded with an index by default, as
    published; `shards=1` writes model.safetensors), tokenizer files, generation_config.json and
    the remote-code stubs. `drop` leaves tensors out and `extra` adds some (strict loading)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = TINY_SDAR_CONFIG | (config_overrides or {})
    write_json(folder / "config.json", config)
    tensors = {
        name: tensor
        for name, tensor in random_sdar_tensors(config, seed, dtype).items()
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
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
            "transformers_version": "4.51.0",
        },
    )
    write_sdar_tokenizer(folder)
    for name in _REMOTE_CODE_FILES:
        (folder / name).write_text(_REMOTE_CODE_STUB, encoding="utf-8")
    return folder
