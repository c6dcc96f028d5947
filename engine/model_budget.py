"""Will a model fit on this machine, and how long will one denoising step take? Estimated from its
config.json alone, before any weights are loaded.

The loader calls `check_budget` (a verdict with a message for the user), then `require_fits` (raises
`ModelTooLargeError` when the model cannot fit). Everything below is computed from the config and
two short measurements of the machine; nothing reads or allocates the weights.

Rules, and how accurate they are:

- Parameters (`parameter_count`). Counted layer by layer from the architecture keys of each family
  we support: BERT / RoBERTa and ModernBERT (as `AutoModelForMaskedLM`, head included), LLaDA
  (OLMo-style names: d_model, n_layers, n_heads, n_kv_heads, mlp_hidden_size, embedding_size,
  weight_tying), LLaDA-MoE, Dream / Qwen2, Llama and Qwen3. The tests check the count equals
  `sum(p.numel())` of instantiated transformers models exactly (BERT, RoBERTa, ModernBERT, Qwen2,
  Llama, Qwen3) and matches the published totals of LLaDA-8B, LLaDA-MoE-7B-A1B and Dream-7B within
  1%. Any other config falls back to a Llama-shaped decoder read from the usual key names
  (hidden_size / d_model / n_embd, num_hidden_layers / n_layers, intermediate_size, vocab_size;
  a gated MLP only for SiLU activations): biases, norms and position tables are guessed, so expect
  a few percent of error there (GPT-2: under 5%), more for unusual layouts.
- `total` is every stored parameter (what sits in memory); `active` is what one token is multiplied
  by in a forward pass: the total minus the input-embedding lookups (a lookup costs no FLOPs),
  minus the experts the router does not pick (mixture-of-experts), with the output head counted
  even when it is tied to the input embedding. For LLaDA-MoE this gives the published 1.4B active.
- Memory (`estimate`): weights = total x dtype_bytes (all experts stay resident). On top of that a
  working allowance: the activations of one forward pass without gradients (per token: 6 hidden
  vectors, the MLP's hidden layer three times over, and the logits in the model's dtype plus two
  float32 copies for the sampler's softmax; per sequence: one layer's attention scores, all
  heads, in float32), plus 10% of the weights (loading transients, allocator fragmentation),
  plus 256 MiB for the runtime (kernel workspaces, the tokenizer). This errs on the generous side
  by design: refusing a model that would have fitted by a few percent costs less than swapping.
  (ModernBERT-base, 2 x 600 tokens, float32: 1.61 GiB estimated; the whole Python process that
  built and ran it peaked at 1.58 GiB.)
- Time per step: the larger of a compute bound and a memory bound. Compute: 2 x active params x
  tokens FLOPs for the matrix products (the head only at the positions whose logits are asked
  for) plus 4 x sequence length x attention width per token and layer for attention, divided by
  the matmul throughput that `measure_matmul_flops` measures on this device (a ~0.2 s fp32 probe
  on a CPU, bf16 on a GPU) times an efficiency factor: `CPU_EFFICIENCY`, calibrated on a
  ModernBERT-base-shaped forward pass (2 x 600 tokens, float32, 2-core CPU: estimated 10.6-13.1 s,
  measured 10.4-12.8 s in paired runs; 0.8-1.3x over runs on a loaded machine);
  `GPU_EFFICIENCY`, not calibrated here (no GPU), the share of peak a forward pass of large bf16
  matmuls typically reaches. Memory: the weights read once per step at the bandwidth that
  `measure_memory_bandwidth` measures (a large tensor copy). Expect +-50% on other machines and
  architectures; int8 quantised linear layers run several times faster than this fp32 rule says.
  The probes measure the machine as it is now: another busy process slows both the probe and the
  model, so the estimate follows the load, roughly.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import PalimpsestError

GIB = 1024**3
SLOW_STEP_SECONDS = 5.0  # above this a step is "slow": the user is told before loading
RUNTIME_BYTES = 256 * 1024**2
LOAD_OVERHEAD = 0.10  # share of the weights kept free for loading transients and fragmentation
CPU_EFFICIENCY = 0.65  # share of the probe's matmul rate a whole forward pass reaches on a CPU
GPU_EFFICIENCY = 0.6
PROBE_SECONDS = 0.2

Config = Mapping[str, Any]

_BERT_TYPES = {"bert", "roberta", "xlm-roberta", "camembert"}
_DTYPE_NAMES = {4: "float32", 2: "16-bit", 1: "int8"}


class ModelTooLargeError(PalimpsestError):
    """The model cannot fit in this machine's memory; the message says what it needs and has."""

    def __init__(self, verdict: BudgetVerdict):
        super().__init__(verdict.message)
        self.verdict = verdict


@dataclass(frozen=True)
class ParameterCount:
    total: int  # every stored parameter: what sits in memory
    active: int  # what one token is multiplied by (no embedding lookups, only the chosen experts)
    head: int  # the output head's share of `active` (vocab x hidden): runs only where logits are


@dataclass(frozen=True)
class Machine:
    """What the estimate needs to know about the device a model would run on."""

    description: str  # for messages: "this CPU", "this GPU (NVIDIA H100)"
    available_bytes: int
    matmul_flops: float  # achieved by a forward pass, i.e. the probe's rate x efficiency
    memory_bandwidth: float  # bytes per second


@dataclass(frozen=True)
class Estimate:
    params: ParameterCount
    weights_bytes: int
    workspace_bytes: int  # activations + loading overhead + runtime
    total_bytes: int
    compute_seconds: float
    memory_seconds: float
    seconds_per_step: float  # the larger of the two bounds


@dataclass(frozen=True)
class BudgetVerdict:
    fits: bool
    slow: bool  # fits, but one step takes over SLOW_STEP_SECONDS
    message: str
    estimate: Estimate
    machine: Machine
    seconds_per_section: float


# ---------------------------------------------------------------------------------------------
# Reading a config


def read_config(model: str | Path) -> dict[str, Any]:
    """The config dict of a local model folder (its config.json), or of a config.json path."""
    path = Path(model).expanduser()
    if path.is_dir():
        path = path / "config.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _first(config: Config, *names: str, default: Any = None) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return default


def _required(config: Config, *names: str) -> int:
    value = _first(config, *names)
    if value is None:
        raise ValueError(f"the model's config has none of {', '.join(names)}: cannot size it")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Parameter counts


@dataclass(frozen=True)
class _Experts:
    count: int
    per_token: int
    size: int  # hidden width of one expert's MLP
    shared_size: int  # hidden width of the always-on shared expert(s); 0 when there is none
    moe_layers: tuple[bool, ...]  # which layers route through experts (the rest are dense)


@dataclass(frozen=True)
class _Decoder:
    """A Llama-shaped transformer: RMSNorms, attention with optional GQA, a gated MLP (or a
    plain two-matrix one, for the fallback's GPT-style configs)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    tied: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # an RMSNorm over head_dim on queries and on keys
    glu: bool = True  # gate, up and down projections (SwiGLU) rather than up and down
    experts: _Experts | None = None


def parameter_count(config: Config) -> ParameterCount:
    """Total and active-per-token parameters of the model a config describes.

    Raises ValueError when the config lacks the sizes needed (hidden size, layers, vocabulary).
    """
    model_type = str(config.get("model_type", "")).lower()
    if model_type == "modernbert":
        return _modernbert(config)
    if model_type in _BERT_TYPES:
        return _bert(config)
    if model_type == "llada" and "d_model" in config:
        return _decoder(_llada(config))
    return _decoder(_hf_decoder(config, model_type))


def _bert(config: Config) -> ParameterCount:
    """BertForMaskedLM / RobertaForMaskedLM: no pooler; the head is a dense + LayerNorm transform
    and a decoder tied to the word embeddings, with its own bias."""
    hidden = int(config["hidden_size"])
    ffn = int(config.get("intermediate_size", 4 * hidden))
    vocab = int(config["vocab_size"])
    lookups = (
        vocab
        + int(config.get("max_position_embeddings", 512))
        + int(config.get("type_vocab_size", 2))
    ) * hidden
    layer_norm = 2 * hidden
    layer = 4 * (hidden * hidden + hidden) + 2 * hidden * ffn + ffn + hidden + 2 * layer_norm
    untied = not config.get("tie_word_embeddings", True)  # then the decoder's bias is untied too
    head = hidden * hidden + hidden + layer_norm + vocab + ((hidden + 1) * vocab if untied else 0)
    total = lookups + layer_norm + int(config["num_hidden_layers"]) * layer + head
    return ParameterCount(
        total, total - lookups + (0 if untied else vocab * hidden), vocab * hidden
    )


def _modernbert(config: Config) -> ParameterCount:
    """ModernBertForMaskedLM: bias-free LayerNorms by default, fused Wqkv, a GLU MLP (Wi is
    2 x intermediate wide), no attention norm in the first layer, decoder tied with a bias."""
    hidden = int(config["hidden_size"])
    ffn = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    norm = hidden * (2 if config.get("norm_bias", False) else 1)
    attention_bias = bool(config.get("attention_bias", False))
    mlp_bias = bool(config.get("mlp_bias", False))
    attention = 4 * hidden * hidden + (4 * hidden if attention_bias else 0)
    mlp = 3 * hidden * ffn + (2 * ffn + hidden if mlp_bias else 0)
    layers = int(config["num_hidden_layers"])
    encoder = layers * (attention + mlp + 2 * norm) - norm  # layer 0's attn_norm is an Identity
    untied = not config.get("tie_word_embeddings", True)
    head = hidden * hidden + (hidden if config.get("classifier_bias", False) else 0) + norm
    decoder = (vocab if config.get("decoder_bias", True) else 0) + (vocab * hidden if untied else 0)
    lookups = vocab * hidden
    total = lookups + norm + encoder + norm + head + decoder
    return ParameterCount(
        total, total - lookups + (0 if untied else vocab * hidden), vocab * hidden
    )


def _llada(config: Config) -> _Decoder:
    """LLaDA's OLMo-style config: Llama blocks (q/k/v, attn_out, ff_proj + up_proj, ff_out)."""
    hidden = int(config["d_model"])
    heads = int(config["n_heads"])
    bias = bool(config.get("include_bias", False))
    if config.get("multi_query_attention"):
        kv_heads = 1
    else:
        kv_heads = int(_first(config, "n_kv_heads", default=heads))
    return _Decoder(
        vocab=int(_first(config, "embedding_size", "vocab_size")),
        hidden=hidden,
        layers=int(config["n_layers"]),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=hidden // heads,
        ffn=int(_first(config, "mlp_hidden_size", default=config.get("mlp_ratio", 4) * hidden)),
        tied=bool(config.get("weight_tying", False)),
        qkv_bias=bias or bool(config.get("include_qkv_bias", False)),
        o_bias=bias,
        mlp_bias=bias,
    )


def _hf_decoder(config: Config, model_type: str) -> _Decoder:
    """Qwen2 / Dream, Llama, Qwen3, LLaDA-MoE, and the fallback for any other decoder config."""
    hidden = _required(config, "hidden_size", "d_model", "n_embd", "dim")
    layers = _required(config, "num_hidden_layers", "n_layers", "n_layer", "num_layers")
    vocab = _required(config, "vocab_size", "padded_vocab_size")
    heads = int(_first(config, "num_attention_heads", "n_heads", "n_head", default=hidden // 64))
    head_dim = int(_first(config, "head_dim", default=hidden // heads))
    ffn = int(
        _first(config, "intermediate_size", "dense_intermediate_size", "ffn_dim", "n_inner")
        or 4 * hidden
    )
    attention_bias = bool(config.get("attention_bias", False))
    activation = str(_first(config, "hidden_act", "activation_function", default="silu"))
    qwen2 = model_type in {"qwen2", "dream"}  # q/k/v always carry a bias, o never does
    return _Decoder(
        vocab=vocab,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=int(_first(config, "num_key_value_heads", "n_kv_heads", default=heads)),
        head_dim=head_dim,
        ffn=ffn,
        tied=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=qwen2 or attention_bias,
        o_bias=not qwen2 and attention_bias,
        mlp_bias=bool(config.get("mlp_bias", False)),
        qk_norm=model_type == "qwen3" or bool(_first(config, "qk_layernorm", "use_qk_norm")),
        glu=activation.lower() in {"silu", "swish", "swiglu"},
        experts=_experts(config, layers, ffn),
    )


def _experts(config: Config, layers: int, ffn: int) -> _Experts | None:
    """Mixture-of-experts keys as LLaDA-MoE (and Qwen-MoE / DeepSeek-style configs) name them."""
    count = _first(config, "num_experts", "num_local_experts", "n_routed_experts")
    if not count:
        return None
    size = int(_first(config, "expert_intermediate_size", "moe_intermediate_size", default=ffn))
    shared = _first(config, "shared_expert_intermediate_size")
    if shared is None:
        shared = int(_first(config, "num_shared_experts", "n_shared_experts", default=0)) * size
    frequency = config.get("moe_layer_freq")
    if isinstance(frequency, list) and len(frequency) == layers:
        moe_layers = tuple(bool(flag) for flag in frequency)
    else:
        dense = int(config.get("first_k_dense_replace", 0))
        moe_layers = tuple(layer >= dense for layer in range(layers))
    return _Experts(
        count=int(count),
        per_token=int(config.get("num_experts_per_tok", 1)),
        size=size,
        shared_size=int(shared),
        moe_layers=moe_layers,
    )


def _decoder(spec: _Decoder) -> ParameterCount:
    queries, keys = spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    attention = spec.hidden * (queries + 2 * keys) + queries * spec.hidden
    attention += (queries + 2 * keys if spec.qkv_bias else 0) + (spec.hidden if spec.o_bias else 0)
    attention += 2 * spec.head_dim if spec.qk_norm else 0
    always = attention + 2 * spec.hidden  # plus the two RMSNorm weights of every layer

    def mlp(width: int) -> int:
        inputs = 2 if spec.glu else 1  # matrices reading the hidden state
        weights = (inputs + 1) * spec.hidden * width
        return weights + ((inputs * width + spec.hidden) if spec.mlp_bias else 0)

    total = active = 0
    experts = spec.experts
    for layer in range(spec.layers):
        if experts is not None and experts.moe_layers[layer]:
            shared = mlp(experts.shared_size) if experts.shared_size else 0
            common = always + spec.hidden * experts.count + shared  # the router is always run
            total += common + experts.count * mlp(experts.size)
            active += common + experts.per_token * mlp(experts.size)
        else:
            total += always + mlp(spec.ffn)
            active += always + mlp(spec.ffn)
    table = spec.vocab * spec.hidden
    total += table + (0 if spec.tied else table) + spec.hidden  # embeddings, head, final norm
    active += table + spec.hidden
    return ParameterCount(total, active, table)


# ---------------------------------------------------------------------------------------------
# The machine


def _device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def available_memory(device: str | torch.device) -> int:
    """Bytes a new model could use now: free GPU memory, or the CPU's available memory (within
    the container's cgroup limit when there is one)."""
    device = _device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return min(_system_available(), _cgroup_available())


def _system_available() -> int:
    try:
        import psutil  # used when it is installed; not a dependency
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # no better figure here


def _cgroup_available() -> int:
    """memory.max - memory.current of this process's cgroup (v2); unbounded when there is none."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return 2**63
    return 2**63 if limit == "max" else max(0, int(limit) - used)


def _time_best(run: Callable[[], object], synchronize: Callable[[], None]) -> float:
    """Best wall time of `run()` over about PROBE_SECONDS, after one warm-up call."""
    run()
    synchronize()
    best, deadline = math.inf, time.perf_counter() + PROBE_SECONDS
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@functools.cache
def _matmul_flops(device: torch.device) -> float:
    cuda = device.type == "cuda"
    size = 4096 if cuda else 1024
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.full((size, size), 0.5, device=device, dtype=dtype)  # no RNG: leave its state be
    b = torch.full((size, size), 0.25, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = _time_best(lambda: torch.mm(a, b), _synchronizer(device))
    return 2 * size**3 / seconds


def measure_matmul_flops(device: str | torch.device) -> float:
    """Peak matmul FLOP/s of the device: square fp32 matmuls on a CPU (size 1024, the scale of a
    forward pass's matmuls), bf16 on a GPU (size 4096); ~0.2 s, measured once per process."""
    return _matmul_flops(_device(device))


@functools.cache
def _memory_bandwidth(device: torch.device) -> float:
    elements = (256 if device.type == "cuda" else 128) * 1024**2 // 4  # beyond any cache
    source = torch.ones(elements, device=device)
    target = torch.empty_like(source)
    seconds = _time_best(lambda: target.copy_(source), _synchronizer(device))
    return 2 * source.numel() * source.element_size() / seconds  # read once, written once


def measure_memory_bandwidth(device: str | torch.device) -> float:
    """Memory bandwidth in bytes/s, from copying a tensor larger than any cache (128 MiB on a CPU,
    256 MiB on a GPU) and counting the bytes read and written; measured once per process."""
    return _memory_bandwidth(_device(device))


def measure_machine(device: str | torch.device) -> Machine:
    """The device as the estimate sees it: memory available now, measured matmul throughput
    (scaled by the efficiency a real forward pass reaches) and memory bandwidth."""
    device = _device(device)
    if device.type == "cuda":
        description = f"this GPU ({torch.cuda.get_device_name(device)})"
        efficiency = GPU_EFFICIENCY
    else:
        description = "this CPU"
        efficiency = CPU_EFFICIENCY
    return Machine(
        description=description,
        available_bytes=available_memory(device),
        matmul_flops=measure_matmul_flops(device) * efficiency,
        memory_bandwidth=measure_memory_bandwidth(device),
    )


# ---------------------------------------------------------------------------------------------
# Estimates and verdicts


def _activation_bytes(
    config: Config, dtype_bytes: int, batch_tokens: int, sequence_length: int, logit_tokens: int
) -> int:
    hidden = _required(config, "hidden_size", "d_model", "n_embd", "dim")
    heads = int(_first(config, "num_attention_heads", "n_heads", "n_head", default=hidden // 64))
    ffn = int(
        _first(
            config,
            "intermediate_size",
            "mlp_hidden_size",
            "expert_intermediate_size",
            default=4 * hidden,
        )
    )
    vocab = _required(config, "vocab_size", "embedding_size", "padded_vocab_size")
    per_token = (6 * hidden + 3 * ffn) * dtype_bytes
    logits = logit_tokens * vocab * (dtype_bytes + 2 * 4)
    sequences = math.ceil(batch_tokens / sequence_length)
    scores = sequences * heads * sequence_length * sequence_length * 4
    return batch_tokens * per_token + logits + scores


def estimate(
    config: Config,
    *,
    device: str | torch.device,
    dtype_bytes: int,
    batch_tokens: int,
    sequence_length: int | None = None,
    logit_tokens: int | None = None,
    machine: Machine | None = None,
) -> Estimate:
    """Memory and seconds per forward step of the model `config` describes, on `device`.

    `batch_tokens` is every token of the batch (sequences x their length); `sequence_length` the
    longest sequence (default: one sequence of batch_tokens, the most attention can cost);
    `logit_tokens` the positions whose logits are computed (default: all of them). `machine`
    replaces the measurements of `device` (tests; a caller that measured already).
    """
    machine = machine or measure_machine(device)
    sequence_length = min(sequence_length or batch_tokens, batch_tokens)
    logit_tokens = batch_tokens if logit_tokens is None else logit_tokens
    params = parameter_count(config)
    weights = params.total * dtype_bytes
    activations = _activation_bytes(
        config, dtype_bytes, batch_tokens, sequence_length, logit_tokens
    )
    workspace = activations + int(LOAD_OVERHEAD * weights) + RUNTIME_BYTES
    hidden = _required(config, "hidden_size", "d_model", "n_embd", "dim")
    layers = _required(config, "num_hidden_layers", "n_layers", "n_layer", "num_layers")
    matmuls = 2 * ((params.active - params.head) * batch_tokens + params.head * logit_tokens)
    attention = 4 * layers * sequence_length * hidden * batch_tokens
    compute_seconds = (matmuls + attention) / machine.matmul_flops
    memory_seconds = weights / machine.memory_bandwidth
    return Estimate(
        params=params,
        weights_bytes=weights,
        workspace_bytes=workspace,
        total_bytes=weights + workspace,
        compute_seconds=compute_seconds,
        memory_seconds=memory_seconds,
        seconds_per_step=max(compute_seconds, memory_seconds),
    )


def _model_name(config: Config) -> str:
    """The config's model name (last part of `_name_or_path`), else its architecture or type."""
    name = Path(str(config.get("_name_or_path") or "")).name
    return name or next(iter(config.get("architectures") or []), None) or "The model"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def _tokens(count: float) -> str:
    number = f"{count:g}"
    return f"{number} token" if count == 1 else f"{number} tokens"


def _count(parameters: int) -> str:
    """8.0B, 149M, 1.2M: parameters the way model cards give them."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.2g}B"
    return f"{parameters / 1e6:.3g}M"


def check_budget(
    config: Config,
    *,
    device: str | torch.device,
    dtype_bytes: int,
    batch_tokens: int,
    tokens_per_section: int,
    tokens_per_step: float,
    sequence_length: int | None = None,
    logit_tokens: int | None = None,
    machine: Machine | None = None,
) -> BudgetVerdict:
    """Whether the model fits on `device`, whether it is slow, and a message saying both: what it
    needs, what the machine has, the time per step and for a section of `tokens_per_section`
    tokens decoded `tokens_per_step` at a time. See `estimate` for the other arguments."""
    machine = machine or measure_machine(device)
    result = estimate(
        config,
        device=device,
        dtype_bytes=dtype_bytes,
        batch_tokens=batch_tokens,
        sequence_length=sequence_length,
        logit_tokens=logit_tokens,
        machine=machine,
    )
    fits = result.total_bytes <= machine.available_bytes
    steps = math.ceil(tokens_per_section / tokens_per_step)
    section_seconds = steps * result.seconds_per_step
    needs = (
        f"{_model_name(config)} ({_count(result.params.total)} parameters) needs about "
        f"{result.total_bytes / GIB:.1f} GiB of memory in "
        f"{_DTYPE_NAMES.get(dtype_bytes, f'{dtype_bytes}-byte')} "
        f"({result.weights_bytes / GIB:.1f} GiB of weights)"
    )
    has = f"{machine.description} has {machine.available_bytes / GIB:.1f} GiB available"
    speed = (
        f"about {_duration(result.seconds_per_step)} per step on {machine.description}: "
        f"a {tokens_per_section}-token section at {_tokens(tokens_per_step)} per step takes "
        f"about {_duration(section_seconds)}"
    )
    if fits:
        message = f"{needs}; {has}. It would run at {speed}."
    else:
        message = f"{needs}, but {has}: choose a smaller model or a machine with more memory."
    return BudgetVerdict(
        fits=fits,
        slow=fits and result.seconds_per_step > SLOW_STEP_SECONDS,
        message=message,
        estimate=result,
        machine=machine,
        seconds_per_section=section_seconds,
    )


def require_fits(verdict: BudgetVerdict) -> BudgetVerdict:
    """The `check_budget` verdict, or ModelTooLargeError (its message) when it cannot fit."""
    if not verdict.fits:
        raise ModelTooLargeError(verdict)
    return verdict
