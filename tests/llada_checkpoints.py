"""Tiny random LLaDA and LLaDA-MoE checkpoints in the published on-disk layout.

Each writer produces what a hub folder holds: config.json with the published keys (plus
`architectures`, `auto_map` and `model_type` as published), safetensors under the published
parameter names (optionally sharded with model.safetensors.index.json), and tokenizer.json,
tokenizer_config.json and special_tokens_map.json with the published special tokens at small ids
and a chat template in the published style. The state dict is built here from names and shapes
alone, independently of `engine.architectures.llada`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT = """\
Either party may terminate this Agreement upon thirty days written notice to the other party.
The Supplier shall indemnify the Customer against all losses arising from a breach.
The court held that the contract was void for uncertainty, following the earlier precedent.
In this paper we study masked diffusion language models and their sampling schedules.
"""

DENSE_SPECIALS = [
    "<|startoftext|>",
    "<|endoftext|>",
    "<|mdm_mask|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
MOE_SPECIALS = ["<|endoftext|>", "<|mask|>", "<role>", "</role>", "<|role_end|>"]

# LLaDA-8B-Instruct's template: Llama-3 style headers, BOS before the first turn.
DENSE_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# LLaDA-MoE's turns, as its sampling code writes them: <role>HUMAN</role>...<|role_end|>.
MOE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{% set role = 'HUMAN' %}"
    "{% else %}{% set role = message['role'] | upper %}{% endif %}"
    "{{ '<role>' + role + '</role>' + message['content'] + '<|role_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<role>ASSISTANT</role>' }}{% endif %}"
)

VOCAB_SIZE = 300


def dense_config(**overrides: object) -> dict:
    """config.json of a 2-layer LLaDA with the keys of GSAI-ML/LLaDA-8B-Instruct's; GQA and an
    embedding wider than the vocabulary, to exercise both."""
    config = {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": 64,
        "embedding_dropout": 0.0,
        "embedding_size": 320,
        "eos_token_id": 1,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": 2,
        "max_sequence_length": 128,
        "mlp_hidden_size": 96,
        "mlp_ratio": 4,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": 4,
        "n_kv_heads": 2,
        "n_layers": 2,
        "pad_token_id": 1,
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-05,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": VOCAB_SIZE,
        "weight_tying": False,
    }
    config.update(overrides)
    return config


def moe_config(**overrides: object) -> dict:
    """config.json of a 2-layer LLaDA-MoE with the keys of inclusionAI/LLaDA-MoE-7B-A1B-Instruct's
    (model_type "llada", as published); layer 0 dense and layer 1 MoE to exercise both."""
    config = {
        "architectures": ["LLaDAMoEModelLM"],
        "auto_map": {
            "AutoConfig": "configuration_lladamoe.LLaDAConfig",
            "AutoModel": "modeling_lladamoe.LLaDAMoEModelLM",
            "AutoModelForCausalLM": "modeling_lladamoe.LLaDAMoEModelLM",
        },
        "attention_bias": False,
        "attention_dropout": 0.0,
        "clip_qkv": None,
        "dense_intermediate_size": 96,
        "eos_token_id": 0,
        "expert_intermediate_size": 32,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "max_position_embeddings": 128,
        "model_type": "llada",
        "moe_layer_freq": [0, 1],
        "moe_router_enable_expert_bias": False,
        "moe_router_score_function": "softmax",
        "norm_topk_prob": False,
        "num_attention_heads": 4,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "output_router_logits": False,
        "pad_token_id": 0,
        "partial_rotary_factor": 1.0,
        "qk_layernorm": True,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 50000.0,
        "routed_scaling_factor": 1,
        "router_aux_loss_coef": 0.01,
        "shared_expert_intermediate_size": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": VOCAB_SIZE,
    }
    config.update(overrides)
    return config


def dense_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """Published parameter names and shapes of a dense LLaDA config (llama blocks)."""
    d, heads = c["d_model"], c["n_heads"]
    kv, hidden = c["n_kv_heads"] * d // heads, c["mlp_hidden_size"]
    rows = c["embedding_size"] or c["vocab_size"]
    linears = {"attn_out": (d, d), "ff_proj": (hidden, d), "up_proj": (hidden, d)}
    linears["ff_out"] = (d, hidden)
    qkv = {"q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d)}
    norms = {"attn_norm": d, "ff_norm": d}
    if c["attention_layer_norm"]:
        norms |= {"q_norm": d, "k_norm": kv}
    bias = c["include_bias"]
    norm_bias = bias if c["bias_for_layer_norm"] is None else c["bias_for_layer_norm"]
    top = {"model.transformer.wte": (rows, d)}
    if not c["weight_tying"]:
        top["model.transformer.ff_out"] = (rows, d)
    shapes = {name + ".weight": shape for name, shape in top.items()}
    shapes |= _with_biases({"model.transformer.ln_f": (d,)}, norm_bias)
    if bias and not c["weight_tying"]:
        shapes["model.transformer.ff_out.bias"] = (rows,)
    for i in range(c["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        shapes |= _with_biases({p + n: s for n, s in linears.items()}, bias)
        shapes |= _with_biases({p + n: s for n, s in qkv.items()}, bias or c["include_qkv_bias"])
        shapes |= _with_biases({p + n: (size,) for n, size in norms.items()}, norm_bias)
    return shapes


def _with_biases(weights: dict[str, tuple[int, ...]], bias: bool) -> dict[str, tuple[int, ...]]:
    """`name.weight` for each entry, and `name.bias` (of the output size) when bias."""
    shapes = {name + ".weight": shape for name, shape in weights.items()}
    if bias:
        shapes |= {name + ".bias": shape[:1] for name, shape in weights.items()}
    return shapes


def _mlp_shapes(prefix: str, d: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        prefix + "gate_proj.weight": (hidden, d),
        prefix + "up_proj.weight": (hidden, d),
        prefix + "down_proj.weight": (d, hidden),
    }


def moe_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """Published parameter names and shapes of a LLaDA-MoE config."""
    d, heads = c["hidden_size"], c["num_attention_heads"]
    head_dim = d // heads
    kv = c["num_key_value_heads"] * head_dim
    shapes = {"model.embed_tokens.weight": (c["vocab_size"], d), "model.norm.weight": (d,)}
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (c["vocab_size"], d)
    for i, freq in enumerate(c["moe_layer_freq"]):
        p = f"model.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,)}
        attention = {"q_proj": (d, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, d)}
        attention = {f"{p}self_attn.{n}": shape for n, shape in attention.items()}
        shapes |= _with_biases(attention, c["attention_bias"])
        if c["qk_layernorm"]:
            shapes[p + "self_attn.q_norm.weight"] = (head_dim,)
            shapes[p + "self_attn.k_norm.weight"] = (head_dim,)
        if freq == 0:
            shapes |= _mlp_shapes(p + "mlp.", d, c["dense_intermediate_size"])
            continue
        shapes[p + "mlp.gate.weight"] = (c["num_experts"], d)
        for e in range(c["num_experts"]):
            shapes |= _mlp_shapes(f"{p}mlp.experts.{e}.", d, c["expert_intermediate_size"])
        if c["moe_router_enable_expert_bias"]:
            shapes[p + "mlp.expert_bias"] = (c["num_experts"],)
        if c["shared_expert_intermediate_size"] is not None:
            shapes |= _mlp_shapes(p + "shared_expert.", d, c["shared_expert_intermediate_size"])
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Norm weights near 1, norm and expert biases small, the rest N(0, 0.1^2); in bfloat16, as
    published."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in sorted(shapes.items()):
        noise = torch.randn(shape, generator=generator)
        if name.endswith("norm.weight"):
            tensor = 1.0 + 0.1 * noise
        elif name.endswith(("expert_bias", "norm.bias")):
            tensor = 0.05 * noise
        else:
            tensor = 0.1 * noise
        state[name] = tensor.to(torch.bfloat16)
    return state


def save_weights(folder: Path, state: dict[str, torch.Tensor], shards: int = 1) -> None:
    """model.safetensors, or `shards` files plus model.safetensors.index.json."""
    if shards == 1:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        return
    names = sorted(state)
    weight_map = {}
    for k in range(shards):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: state[name] for name in names[k::shards]}
        save_file(part, folder / shard, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, shard)
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_tokenizer(folder: Path, specials: list[str], special_map: dict, template: str) -> None:
    """A byte-level BPE tokenizer.json with `specials` at ids 0.., and its two json companions."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TEXT.splitlines(), trainer=trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in specials
    }
    tokenizer_config = {
        "added_tokens_decoder": added,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))


def _write(folder: str | Path, config: dict, state: dict, shards: int) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_weights(folder, state, shards)
    return folder


def write_dense_checkpoint(
    folder: str | Path, *, seed: int = 0, shards: int = 1, **overrides: object
) -> Path:
    """A tiny LLaDA-8B-Instruct-shaped folder (config overrides allowed, e.g. weight_tying)."""
    config = dense_config(**overrides)
    folder = _write(folder, config, random_state(dense_shapes(config), seed), shards)
    specials = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    write_tokenizer(folder, DENSE_SPECIALS, specials, DENSE_CHAT_TEMPLATE)
    return folder


def write_moe_checkpoint(
    folder: str | Path, *, seed: int = 0, shards: int = 1, **overrides: object
) -> Path:
    """A tiny LLaDA-MoE-7B-A1B-Instruct-shaped folder; its tokenizer, like the published one,
    has `<|mask|>` in its vocabulary but declares no mask token."""
    config = moe_config(**overrides)
    folder = _write(folder, config, random_state(moe_shapes(config), seed), shards)
    specials = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    write_tokenizer(folder, MOE_SPECIALS, specials, MOE_CHAT_TEMPLATE)
    return folder
