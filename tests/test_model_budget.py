"""Model budget: parameter counts from configs, memory and time estimates, and the verdicts."""

from __future__ import annotations

import math
from typing import Any

import pytest
import transformers
from transformers import PretrainedConfig

from engine.errors import PalimpsestError
from engine.model_budget import (
    GIB,
    Machine,
    ModelTooLargeError,
    available_memory,
    check_budget,
    estimate,
    measure_machine,
    measure_matmul_flops,
    measure_memory_bandwidth,
    parameter_count,
    read_config,
    require_fits,
)

SPECIAL_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
SMALL = dict(vocab_size=300, hidden_size=32, num_hidden_layers=3, num_attention_heads=4)

# (model class, config) pairs built small; their parameters are counted with numel.
INSTANTIATED = {
    "bert": (transformers.BertForMaskedLM, transformers.BertConfig(**SMALL, intermediate_size=48)),
    "bert untied": (
        transformers.BertForMaskedLM,
        transformers.BertConfig(**SMALL, intermediate_size=48, tie_word_embeddings=False),
    ),
    "roberta": (
        transformers.RobertaForMaskedLM,
        transformers.RobertaConfig(
            **SMALL, intermediate_size=40, max_position_embeddings=66, type_vocab_size=1
        ),
    ),
    "modernbert": (
        transformers.ModernBertForMaskedLM,
        transformers.ModernBertConfig(**SMALL, **SPECIAL_IDS, intermediate_size=48),
    ),
    "modernbert biases, untied": (
        transformers.ModernBertForMaskedLM,
        transformers.ModernBertConfig(
            **SMALL,
            **SPECIAL_IDS,
            intermediate_size=40,
            norm_bias=True,
            attention_bias=True,
            mlp_bias=True,
            classifier_bias=True,
            decoder_bias=False,
            tie_word_embeddings=False,
        ),
    ),
    "qwen2 (Dream's layout)": (
        transformers.Qwen2ForCausalLM,
        transformers.Qwen2Config(**SMALL, intermediate_size=56, num_key_value_heads=2),
    ),
    "llama tied, biases": (
        transformers.LlamaForCausalLM,
        transformers.LlamaConfig(
            **SMALL,
            intermediate_size=56,
            num_key_value_heads=1,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=True,
        ),
    ),
    "qwen3 (head_dim != hidden/heads)": (
        transformers.Qwen3ForCausalLM,
        transformers.Qwen3Config(**SMALL, intermediate_size=56, num_key_value_heads=2, head_dim=16),
    ),
}


def as_saved(config: PretrainedConfig, tmp_path) -> dict[str, Any]:
    """The config as a config.json on disk has it (only non-default values for some keys)."""
    config.save_pretrained(tmp_path)
    return read_config(tmp_path)


@pytest.mark.parametrize("name", INSTANTIATED)
def test_count_equals_numel_of_instantiated_models(name, tmp_path):
    model_class, config = INSTANTIATED[name]
    model = model_class(config)
    numel = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    assert parameter_count(as_saved(config, tmp_path)).total == numel
    assert parameter_count(config.to_dict()).total == numel


def test_fallback_is_close_for_an_unknown_family():
    """GPT-2 is no family we know: the generic decoder rule reads n_embd / n_layer and guesses
    the rest (no biases, no position table), within a few percent."""
    config = transformers.GPT2Config(
        vocab_size=1000, n_embd=64, n_layer=4, n_head=4, n_positions=64
    )
    numel = sum(p.numel() for p in transformers.GPT2LMHeadModel(config).parameters())
    assert parameter_count(config.to_dict()).total == pytest.approx(numel, rel=0.05)


def test_config_without_sizes_is_refused():
    with pytest.raises(ValueError, match="cannot size it"):
        parameter_count({"model_type": "mystery"})


# Published config.json values (the architecture keys), copied from the authors' hub folders.
LLADA_8B_INSTRUCT = {  # GSAI-ML/LLaDA-8B-Instruct
    "_name_or_path": "GSAI-ML/LLaDA-8B-Instruct",
    "architectures": ["LLaDAModelLM"],
    "model_type": "llada",
    "activation_type": "silu",
    "block_type": "llama",
    "d_model": 4096,
    "n_layers": 32,
    "n_heads": 32,
    "n_kv_heads": 32,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "vocab_size": 126464,
    "embedding_size": 126464,
    "include_bias": False,
    "include_qkv_bias": False,
    "layer_norm_type": "rms",
    "max_sequence_length": 4096,
    "multi_query_attention": None,
    "rope": True,
    "weight_tying": False,
}
LLADA_MOE_7B_A1B_INSTRUCT = {  # inclusionAI/LLaDA-MoE-7B-A1B-Instruct
    "architectures": ["LLaDAMoEModelLM"],
    "model_type": "llada",
    "hidden_act": "silu",
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "dense_intermediate_size": 8192,
    "expert_intermediate_size": 1024,
    "shared_expert_intermediate_size": None,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "moe_layer_freq": [1] * 16,
    "qk_layernorm": True,
    "attention_bias": False,
    "partial_rotary_factor": 1,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "vocab_size": 157184,
}
DREAM_V0_INSTRUCT_7B = {  # Dream-org/Dream-v0-Instruct-7B (Qwen2.5-7B's shape)
    "architectures": ["DreamModel"],
    "model_type": "Dream",
    "hidden_act": "silu",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
}


@pytest.mark.parametrize(
    ("config", "total", "active"),
    [
        # 8.02B on the hub page (safetensors metadata); "8B" in the paper. Dense: no experts.
        (LLADA_8B_INSTRUCT, 8.02e9, None),
        # 14.72 GB of bf16 safetensors = 7.36B ("7B" in the name); 1.4B activated (model card).
        (LLADA_MOE_7B_A1B_INSTRUCT, 7.36e9, 1.4e9),
        # 7.62B on the hub page (Qwen2.5-7B: 7.61B).
        (DREAM_V0_INSTRUCT_7B, 7.62e9, None),
    ],
    ids=["LLaDA-8B-Instruct", "LLaDA-MoE-7B-A1B-Instruct", "Dream-v0-Instruct-7B"],
)
def test_published_configs_give_published_sizes(config, total, active):
    count = parameter_count(config)
    assert count.total == pytest.approx(total, rel=0.01)
    if active is not None:
        assert count.active == pytest.approx(active, rel=0.01)
    else:  # dense: everything but the input-embedding lookup is multiplied
        assert count.total - count.active == count.head


def machine(available_gib: float, flops: float = 1e11, bandwidth: float = 1e10) -> Machine:
    return Machine("this CPU", int(available_gib * GIB), flops, bandwidth)


def test_mixture_of_experts_needs_all_experts_in_memory_but_computes_few():
    result = estimate(
        LLADA_MOE_7B_A1B_INSTRUCT,
        device="cpu",
        dtype_bytes=2,
        batch_tokens=256,
        machine=machine(64),
    )
    assert result.weights_bytes == 2 * result.params.total
    dense = parameter_count({**LLADA_MOE_7B_A1B_INSTRUCT, "num_experts_per_tok": 64})
    assert dense.total == result.params.total
    assert dense.active > 4 * result.params.active


def test_eight_billion_model_on_eight_gib_is_refused():
    arguments = dict(
        device="cpu",
        dtype_bytes=2,
        batch_tokens=2 * 600,
        tokens_per_section=128,
        tokens_per_step=1,
        machine=machine(8),
    )
    verdict = check_budget(LLADA_8B_INSTRUCT, **arguments)
    assert not verdict.fits and not verdict.slow
    needed = verdict.estimate.total_bytes / GIB
    assert needed > 15  # 16 GB of bf16 weights alone
    assert f"needs about {needed:.1f} GiB" in verdict.message
    assert "8.0 GiB available" in verdict.message
    assert "LLaDA-8B-Instruct" in verdict.message
    with pytest.raises(ModelTooLargeError) as raised:
        require_fits(check_budget(LLADA_8B_INSTRUCT, **arguments))
    assert isinstance(raised.value, PalimpsestError)
    assert str(raised.value) == verdict.message
    assert raised.value.verdict == verdict


def test_slow_but_fitting_model_says_how_slow():
    """The machine's throughput is chosen so that a step takes 40 s: the message gives the step
    and the section time (128 steps of 40 s is 85 minutes)."""
    batch = dict(device="cpu", dtype_bytes=4, batch_tokens=1200)
    unit = estimate(LLADA_8B_INSTRUCT, **batch, machine=machine(64, flops=1.0))
    flops = unit.compute_seconds / 40  # work in FLOPs, spread over 40 s
    verdict = require_fits(
        check_budget(
            LLADA_8B_INSTRUCT,
            **batch,
            tokens_per_section=128,
            tokens_per_step=1,
            machine=machine(64, flops=flops),
        )
    )
    assert verdict.fits and verdict.slow
    assert verdict.estimate.seconds_per_step == pytest.approx(40)
    assert verdict.seconds_per_section == pytest.approx(128 * 40)
    assert (
        "about 40 s per step on this CPU: a 128-token section at 1 token per step takes about "
        "85 minutes" in verdict.message
    )
    assert "64.0 GiB available" in verdict.message


def test_fast_model_is_neither_refused_nor_slow():
    config = INSTANTIATED["modernbert"][1].to_dict()
    verdict = check_budget(
        config,
        device="cpu",
        dtype_bytes=4,
        batch_tokens=256,
        tokens_per_section=128,
        tokens_per_step=4,
        machine=machine(16),
    )
    assert verdict.fits and not verdict.slow
    assert verdict.seconds_per_section == pytest.approx(32 * verdict.estimate.seconds_per_step)
    assert "at 4 tokens per step" in verdict.message


def test_step_time_is_the_larger_of_compute_and_memory_bounds():
    """One token through a 16 GB model is bound by reading the weights, not by arithmetic."""
    result = estimate(
        LLADA_8B_INSTRUCT, device="cpu", dtype_bytes=2, batch_tokens=1, machine=machine(64)
    )
    assert result.memory_seconds == pytest.approx(result.weights_bytes / 1e10)
    assert result.seconds_per_step == result.memory_seconds > result.compute_seconds


def test_head_runs_only_where_logits_are_asked_for():
    arguments = dict(device="cpu", dtype_bytes=4, batch_tokens=1024, machine=machine(64))
    everywhere = estimate(LLADA_8B_INSTRUCT, **arguments)
    masked_only = estimate(LLADA_8B_INSTRUCT, **arguments, logit_tokens=32)
    saved_flops = 2 * everywhere.params.head * (1024 - 32)
    saved_seconds = everywhere.compute_seconds - masked_only.compute_seconds
    assert saved_seconds == pytest.approx(saved_flops / 1e11)
    assert masked_only.workspace_bytes < everywhere.workspace_bytes


def test_probes_measure_this_machine():
    flops = measure_matmul_flops("cpu")
    assert math.isfinite(flops) and flops > 1e8
    assert measure_matmul_flops("cpu") == flops  # cached for the process
    assert measure_memory_bandwidth("cpu") > 1e8
    assert available_memory("cpu") > 0
    measured = measure_machine("cpu")
    assert measured.description == "this CPU" and 0 < measured.matmul_flops < flops
