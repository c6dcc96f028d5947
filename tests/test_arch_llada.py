"""Our LLaDA / LLaDA-MoE modules against tiny checkpoints in the published layout.

Besides loading, padding, head placement and bidirectionality, every variant is checked against
a plain re-implementation of the published forward pass written below (manual softmax attention,
explicit RoPE, routing over all experts), which reads the safetensors directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from llada_checkpoints import (
    dense_config,
    moe_config,
    write_dense_checkpoint,
    write_moe_checkpoint,
)
from safetensors.torch import load_file, save_file

from engine.architectures.llada import (
    LLaDAConfig,
    LLaDAModel,
    LLaDATokenIds,
    is_llada_config,
    load_llada,
    load_llada_tokenizer,
)

CPU = torch.device("cpu")

VARIANTS = {
    "dense": (write_dense_checkpoint, {}),
    "dense-tied-mqa": (write_dense_checkpoint, {"weight_tying": True, "n_kv_heads": 1}),
    "dense-qknorm-bias": (
        write_dense_checkpoint,
        {"attention_layer_norm": True, "include_bias": True, "scale_logits": True},
    ),
    "moe": (write_moe_checkpoint, {}),
    "moe-shared-bias-partial": (
        write_moe_checkpoint,
        {
            "shared_expert_intermediate_size": 48,
            "moe_router_enable_expert_bias": True,
            "partial_rotary_factor": 0.5,
            "moe_layer_freq": [1, 1],
        },
    ),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llada")
    return {name: write(root / name, seed=7, **kw) for name, (write, kw) in VARIANTS.items()}


@pytest.fixture(scope="module")
def models(folders: dict[str, Path]) -> dict[str, LLaDAModel]:
    return {name: load_llada(f, dtype=torch.float32, device=CPU) for name, f in folders.items()}


def _ids(rows: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(6, 300, (rows, length), generator=torch.Generator().manual_seed(seed))


# --- the independent reference -------------------------------------------------------------


def _rms(s: dict, name: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    out = s[name + ".weight"] * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return out + s[name + ".bias"] if name + ".bias" in s else out


def _rope(x: torch.Tensor, theta: float, rot: int) -> torch.Tensor:
    """x [H, L, D]: rotate dims (j, j + rot/2), j < rot/2, by the angle pos * theta^(-2j/rot)."""
    inv = theta ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)
    angle = (torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv).float()
    cos, sin = angle.cos(), angle.sin()
    a, b = x[..., : rot // 2], x[..., rot // 2 : rot]
    return torch.cat((a * cos - b * sin, b * cos + a * sin, x[..., rot:]), dim=-1)


def _attention(q, k, v, heads: int, kv_heads: int) -> torch.Tensor:
    """q [L, H*D], k/v [L, KV*D] for one sequence; every query sees every key."""
    length, dim = q.shape[0], q.shape[1] // heads
    q = q.view(length, heads, dim).transpose(0, 1)
    k = k.view(length, kv_heads, dim).transpose(0, 1)
    v = v.view(length, kv_heads, dim).transpose(0, 1)
    return q, k, v, dim


def _attend(q, k, v, heads: int, kv_heads: int, dim: int) -> torch.Tensor:
    outs = []
    for h in range(heads):
        g = h // (heads // kv_heads)
        weights = torch.softmax(q[h] @ k[g].T / math.sqrt(dim), dim=-1)
        outs.append(weights @ v[g])
    return torch.cat(outs, dim=-1)


def _linear(s: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    out = x @ s[name + ".weight"].T
    return out + s[name + ".bias"] if name + ".bias" in s else out


def dense_reference(s: dict, c: dict, ids: torch.Tensor) -> torch.Tensor:
    """One unpadded sequence through LLaDALlamaBlock x n_layers, ln_f and the output layer."""
    eps, heads, kv_heads = c["rms_norm_eps"], c["n_heads"], c["n_kv_heads"]
    x = s["model.transformer.wte.weight"][ids]
    for i in range(c["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        h = _rms(s, p + "attn_norm", x, eps)
        q, k, v = (_linear(s, p + n, h) for n in ("q_proj", "k_proj", "v_proj"))
        if c["attention_layer_norm"]:
            q, k = _rms(s, p + "q_norm", q, eps), _rms(s, p + "k_norm", k, eps)
        q, k, v, dim = _attention(q, k, v, heads, kv_heads)
        q, k = _rope(q, c["rope_theta"], dim), _rope(k, c["rope_theta"], dim)
        x = x + _linear(s, p + "attn_out", _attend(q, k, v, heads, kv_heads, dim))
        h = _rms(s, p + "ff_norm", x, eps)
        gated = F.silu(_linear(s, p + "ff_proj", h)) * _linear(s, p + "up_proj", h)
        x = x + _linear(s, p + "ff_out", gated)
    x = _rms(s, "model.transformer.ln_f", x, eps)
    out = "wte" if c["weight_tying"] else "ff_out"
    logits = _linear(s, f"model.transformer.{out}", x)
    return logits / math.sqrt(c["d_model"]) if c["scale_logits"] else logits


def _mlp(s: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    gate, up = x @ s[p + "gate_proj.weight"].T, x @ s[p + "up_proj.weight"].T
    return (F.silu(gate) * up) @ s[p + "down_proj.weight"].T


def _moe(s: dict, c: dict, p: str, h: torch.Tensor) -> torch.Tensor:
    """Every expert on every token; the top-k probabilities (after the bias) weight them."""
    probs = torch.softmax(h @ s[p + "mlp.gate.weight"].T, dim=-1)
    if p + "mlp.expert_bias" in s:
        probs = probs + s[p + "mlp.expert_bias"]
    top, chosen = probs.topk(c["num_experts_per_tok"], dim=-1)
    weights = torch.zeros_like(probs).scatter(-1, chosen, top)
    out = sum(
        weights[:, e, None] * _mlp(s, f"{p}mlp.experts.{e}.", h) for e in range(c["num_experts"])
    )
    if c["shared_expert_intermediate_size"] is not None:
        out = out + _mlp(s, p + "shared_expert.", h)
    return out


def moe_reference(s: dict, c: dict, ids: torch.Tensor) -> torch.Tensor:
    """One unpadded sequence through LLaDAMoEDecoderLayer x n_layers, norm and lm_head."""
    eps, heads, kv_heads = c["rms_norm_eps"], c["num_attention_heads"], c["num_key_value_heads"]
    x = s["model.embed_tokens.weight"][ids]
    for i, freq in enumerate(c["moe_layer_freq"]):
        p = f"model.layers.{i}."
        h = _rms(s, p + "input_layernorm", x, eps)
        q, k, v = (_linear(s, f"{p}self_attn.{n}", h) for n in ("q_proj", "k_proj", "v_proj"))
        q, k, v, dim = _attention(q, k, v, heads, kv_heads)
        if c["qk_layernorm"]:
            q = _rms(s, p + "self_attn.q_norm", q, eps)
            k = _rms(s, p + "self_attn.k_norm", k, eps)
        rot = int(dim * c["partial_rotary_factor"])
        q, k = _rope(q, c["rope_theta"], rot), _rope(k, c["rope_theta"], rot)
        x = x + _linear(s, p + "self_attn.o_proj", _attend(q, k, v, heads, kv_heads, dim))
        h = _rms(s, p + "post_attention_layernorm", x, eps)
        x = x + (_mlp(s, p + "mlp.", h) if freq == 0 else _moe(s, c, p, h))
    x = _rms(s, "model.norm", x, eps)
    return x @ s["lm_head.weight"].T


def reference_logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    config = json.loads((folder / "config.json").read_text())
    state = {}
    for shard in folder.glob("*.safetensors"):
        state |= {k: v.float() for k, v in load_file(shard).items()}
    run = moe_reference if "num_experts" in config else dense_reference
    return torch.stack([run(state, config, row) for row in ids])


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_matches_the_reference_forward(name, folders, models) -> None:
    ids = _ids(2, 12, seed=1)
    with torch.no_grad():
        ours = models[name].head(models[name](ids))
    expected = reference_logits(folders[name], ids)
    assert ours.shape == expected.shape
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5), (ours - expected).abs().max()


@pytest.mark.parametrize("name", ["dense", "moe-shared-bias-partial"])
def test_padded_batch_rows_equal_each_row_alone(name, models) -> None:
    model, lengths, pad = models[name], [9, 5, 12], 1
    ids = torch.full((3, 12), pad)
    mask = torch.zeros(3, 12, dtype=torch.long)
    rows = [_ids(1, n, seed=10 + n)[0] for n in lengths]
    for r, row in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)] = row, 1
    with torch.no_grad():
        batch = model.logits(ids, mask, mask.bool())
        alone = torch.cat([model.head(model(row[None]))[0] for row in rows])
    assert torch.allclose(batch, alone, atol=1e-5), (batch - alone).abs().max()


@pytest.mark.parametrize("name", ["dense", "moe"])
def test_logits_at_positions_equal_head_of_forward(name, models) -> None:
    model, ids = models[name], _ids(2, 10, seed=2)
    positions = torch.zeros(2, 10, dtype=torch.bool)
    positions[0, [1, 7]] = positions[1, [0, 3, 9]] = True
    with torch.no_grad():
        picked = model.logits(ids, torch.ones_like(ids), positions)
        full = model.head(model(ids, None))
    assert picked.shape == (5, model.config.embedding_size)
    assert torch.allclose(picked, full[positions], atol=1e-6)


@pytest.mark.parametrize("name", ["dense", "moe"])
def test_attention_is_bidirectional(name, models) -> None:
    model, ids = models[name], _ids(1, 8, seed=3)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 300
    with torch.no_grad():
        before, after = model.head(model(ids)), model.head(model(changed))
    assert not torch.allclose(before[0, 0], after[0, 0])


def test_sharded_checkpoint_equals_single_file(tmp_path: Path) -> None:
    single = write_moe_checkpoint(tmp_path / "single", seed=3)
    sharded = write_moe_checkpoint(tmp_path / "sharded", seed=3, shards=3)
    assert (sharded / "model.safetensors.index.json").is_file()
    ids = _ids(1, 6)
    a, b = (load_llada(f, dtype=torch.float32, device=CPU) for f in (single, sharded))
    with torch.no_grad():
        assert torch.equal(a.head(a(ids)), b.head(b(ids)))


def test_missing_or_unexpected_tensor_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_dense_checkpoint(tmp_path / "ckpt")
    state = load_file(folder / "model.safetensors")
    state.pop("model.transformer.blocks.1.up_proj.weight")
    state["model.transformer.blocks.1.extra.weight"] = torch.zeros(2)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError) as error:
        load_llada(folder, dtype=torch.float32, device=CPU)
    assert "model.transformer.blocks.1.up_proj.weight" in str(error.value)
    assert "model.transformer.blocks.1.extra.weight" in str(error.value)


def test_loads_in_bfloat16(folders) -> None:
    model = load_llada(folders["moe"], dtype=torch.bfloat16, device=CPU)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        assert model.logits(_ids(1, 4), None, torch.ones(1, 4, dtype=torch.bool)).isfinite().all()


def test_config_reads_the_published_keys() -> None:
    dense = LLaDAConfig.from_dict(dense_config())
    assert (dense.d_model, dense.n_heads, dense.n_kv_heads, dense.head_dim) == (64, 4, 2, 16)
    assert (dense.vocab_size, dense.embedding_size, dense.mask_token_id) == (300, 320, 2)
    assert not dense.is_moe and not dense.weight_tying and dense.rope_theta == 500000.0
    moe = LLaDAConfig.from_dict(moe_config(partial_rotary_factor=0.5))
    assert moe.is_moe and moe.moe_layers == (False, True) and moe.rotary_dim == 8
    assert (moe.num_experts, moe.num_experts_per_tok, moe.expert_intermediate_size) == (4, 2, 32)
    assert moe.shared_expert_intermediate_size is None and moe.mask_token_id is None


def test_llada_configs_are_recognised() -> None:
    assert is_llada_config(dense_config()) and is_llada_config(moe_config())
    assert is_llada_config({"model_type": "lladamoe"})
    assert not is_llada_config({"model_type": "llada2_moe", "architectures": ["LLaDA2MoeModelLM"]})
    assert not is_llada_config({"model_type": "llama"})


def test_unsupported_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="block_type"):
        LLaDAConfig.from_dict(dense_config(block_type="sequential"))
    with pytest.raises(ValueError, match="rope_scaling"):
        LLaDAConfig.from_dict(moe_config(rope_scaling={"rope_type": "linear", "factor": 2.0}))


def test_tokenizer_loads_and_ids_resolve(folders, models) -> None:
    dense_tok = load_llada_tokenizer(folders["dense"])
    dense = LLaDATokenIds.resolve(models["dense"].config, dense_tok)
    assert (dense.mask, dense.eos, dense.pad) == (2, 1, 1)
    assert dense.end_of_turn == dense_tok.convert_tokens_to_ids("<|eot_id|>")
    text = dense_tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi")
    moe_tok = load_llada_tokenizer(folders["moe"])
    moe = LLaDATokenIds.resolve(models["moe"].config, moe_tok)
    assert moe_tok.mask_token_id is None
    assert moe.mask == moe_tok.convert_tokens_to_ids("<|mask|>")
    assert moe.end_of_turn == moe_tok.convert_tokens_to_ids("<|role_end|>")
