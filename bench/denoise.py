"""Denoising speed: the engine's sampler against a naive LLaDA-style reference (issue 5, part 1).

    python bench/denoise.py [--shapes tiny base large] [--steps 16] [--threads N]
                            [--variants naive exact ours int8] [--cache DIR]

Prints JSON on stdout (progress goes to stderr). Both variants denoise the same synthetic draft:
4 sections x 128 masked tokens, each section with 384 tokens of evidence (3 passages of filler
prose, as `SearchHit`s, so no library or embedding model is involved), with the same model and the
same commits per step (the engine's linear schedule: 128 / steps tokens per block per step,
argmax proposals, low-confidence order, one seeded generator).

Variants:
- `naive`: one sequence holding the instruction, every section's heading and evidence, then all
  four canvases; every step recomputes the whole sequence and evaluates the LM head at every
  position (the model's full forward, `.logits`), then commits with `engine.sampler.step`. All four
  blocks step together, so it takes as many forward passes as `ours` (LLaDA's own semi-
  autoregressive schedule would denoise the blocks one after another: 4x the passes).
- `exact`: the engine's windows without the context cache: one window per block
  (`engine.prompting.prompt_ids`: instruction, heading, the block's evidence, the tail of the
  previous block and the head of the next; rebuilt every `ROUND` steps, as the engine's
  `refresh_every`) plus its canvas, batched with `pack_batch`, LM head only at masked positions
  (`Denoiser.logits` with `positions`), `step`.
- `ours`: the engine with every optimisation: as `exact`, but each round encodes the prompts once
  (`ModernBertContextCache.encode_prompts`) and every step runs only the canvases against those
  keys and values. At the stalest step of each round (the cache `ROUND - 1` steps old) the exact
  logits are computed too, untimed, for `cache_top1_agreement` (share of masked positions whose
  argmax proposal is the same) and `cache_kl` (mean KL(exact || cached) per position).
  The prompt budget is large enough that no evidence is clipped (the shaped test models carry the
  tiny tokenizer, whose 512-token limit would otherwise trim the evidence).
  Random weights write random tokens, whose decoded bytes re-tokenise into several times as many
  tokens as prose would; so a neighbour is shown through `engine.draft.block_text` with prose
  (the section's reference text) at its committed positions: the context is as long as a real
  draft's, and built by the engine's code.

Models: tiny (`build_tiny_modernbert`), ModernBERT-base and -large shapes
(`build_shaped_modernbert`, random weights: timing does not depend on them; they carry the tiny
tokenizer, so all three read the same token ids), built once into a cache folder and loaded
through `HFMaskedLMDenoiser`, the real loading path, in float32 on the CPU.

Per variant, each in its own subprocess (so memory and allocator state do not leak between them):
- one untimed warm-up forward pass, then `--steps` timed steps, each timed end to end (prompt
  building, packing, forward pass, commit); `ms_per_step` is the median, `seconds_per_draft` the
  sum, `committed_tokens_per_s` the committed tokens over that sum; the medians of the three parts
  are reported too;
- `forward_passes`: timed passes (the warm-up is not counted);
- memory: the process's resident-set high-water mark (VmHWM) over the timed steps, after resetting
  it through /proc/self/clear_refs, so model loading does not count; `step_memory_mb` is that peak
  minus the resident set just before the steps (activations, logits, allocator growth), and
  `peak_rss_mb` the peak itself (weights included). Where the reset is not possible, `ru_maxrss` of
  the whole process is reported instead and `memory_method` says so.

FLOP floor per step: 2 x non-embedding parameters x positions processed (real tokens, padding
excluded), over the fp32 matmul peak measured in the same run (best of several 2048^3 matmuls at
the same thread count). `floor_with_head_ms` adds 2 x vocabulary x hidden per LM-head row (every
position for `naive`, the masked ones for `ours`); attention scores are not counted.
`over_floor` = measured median ms per step / floor. `speedup_per_step_<variant>` = naive mean ms
per step / the variant's mean ms per step (equal passes, so also the ratio of whole drafts; above
1: faster than naive). The median (`ms_per_step`) is a cached step; the mean includes each round's
prompt encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from engine.context_cache import PromptCache
from engine.denoiser import HFMaskedLMDenoiser, build_prompt_ids, forbidden_token_ids
from engine.draft import canvas_text
from engine.library import SearchHit
from engine.prompting import SYSTEM, edges_first, prompt_ids
from engine.sampler import Canvas, SamplerSettings, State, pack_batch, step
from engine.testmodels import build_shaped_modernbert, build_tiny_modernbert

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

SHAPES = ("tiny", "base", "large")
VARIANTS = ("naive", "exact", "ours", "int8")
ROUND = 4  # DraftSettings.refresh_every: prompts (and the context cache) are rebuilt this often
SECTIONS = 4
BLOCK_TOKENS = 128
EVIDENCE_TOKENS = 384  # per section
PASSAGES = 3  # DraftSettings.passages
CONTEXT_CHARS = 200  # DraftSettings.context_chars
PROMPT_BUDGET = 4096  # tokens: large enough that prompt_ids never clips the evidence
SEED = 0
MATMUL_SIZE = 2048
MATMUL_REPEATS = 5
DEFAULT_CACHE = Path("/tmp/palimpsest-bench-models")

INSTRUCTION = "Draft a services agreement between a supplier and a customer, following the sources."
HEADINGS = ["Definitions", "Services and payment", "Liability and indemnity", "Termination"]
PROSE = [
    "This Agreement is entered into by and between the parties named below.",
    "Either party may terminate this Agreement upon thirty days' written notice to the other.",
    "The Supplier shall indemnify the Customer against all losses arising from a breach.",
    "Confidential Information shall not be disclosed to any third party without consent.",
    "A party may terminate immediately if the other party commits a material breach.",
    "Upon termination, each party shall return or destroy the Confidential Information.",
    "The court held that the contract was void for uncertainty, following the precedent.",
    "Section 2 of the Act applies to every contract for the supply of goods or services.",
    "The Customer shall pay each invoice within thirty days of the date of the invoice.",
    "Neither party excludes or limits its liability for death or personal injury.",
    "The Services shall be performed with reasonable skill, care and diligence.",
    "Our results show that retrieval improves the factual accuracy of the sections.",
    "The evidence suggests that the effect is robust across datasets and random seeds.",
    "Any notice under this Agreement shall be in writing and delivered by hand or by post.",
    "The total liability of the Supplier shall not exceed the fees paid in the year.",
    "This Agreement is governed by the law of England and Wales.",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The synthetic draft


@dataclass(frozen=True)
class Section:
    heading: str
    evidence: list[SearchHit]  # PASSAGES hits, EVIDENCE_TOKENS tokens of prose in all
    reference: Tensor  # [BLOCK_TOKENS] prose token ids: what neighbours see at committed slots


def filler(tokenizer: Tokenizer, n_tokens: int, seed: int) -> tuple[str, list[int]]:
    """Exactly `n_tokens` tokens of prose (sentences of PROSE in a seeded order), and their ids."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while True:
        sentences += rng.sample(PROSE, len(PROSE))
        text = " ".join(sentences)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        if len(ids) >= n_tokens:
            return text[: offsets[n_tokens - 1][1]], ids[:n_tokens]


def synthetic_sections(tokenizer: Tokenizer) -> list[Section]:
    per_passage = EVIDENCE_TOKENS // PASSAGES
    sections = []
    for s, heading in enumerate(HEADINGS[:SECTIONS]):
        hits = []
        for p in range(PASSAGES):
            text, _ = filler(tokenizer, per_passage, seed=100 * s + p)
            hits.append(
                SearchHit(
                    chunk_id=f"s{s}-p{p}",
                    doc_id=f"doc{p}",
                    filename=f"source-{p + 1}.pdf",
                    page_index=s,
                    page_label=str(s + 1),
                    char_start=0,
                    char_end=len(text),
                    score=1.0 / (p + 1),
                    text=text,
                )
            )
        _, reference = filler(tokenizer, BLOCK_TOKENS, seed=100 * s + 99)
        sections.append(Section(heading, hits, torch.tensor(reference, dtype=torch.long)))
    return sections


def evidence_tokens(tokenizer: Tokenizer, sections: list[Section]) -> int:
    """Tokens of evidence text per section, as the passages appear in the prompts."""
    total = sum(
        len(tokenizer(" ".join(hit.text.split()), add_special_tokens=False)["input_ids"])
        for section in sections
        for hit in section.evidence
    )
    return round(total / len(sections))


# ---------------------------------------------------------------------------------------------
# The two variants: inputs of one step, and the forward pass


Inputs = tuple[Tensor, Tensor, Tensor]  # input_ids, attention_mask, positions (as pack_batch)


def neighbour_text(tokenizer: Tokenizer, section: Section, canvas: Canvas) -> str:
    """A neighbour block's text as the engine shows it, with prose at its committed positions."""
    shown = replace(canvas, tokens=torch.where(canvas.masked, canvas.tokens, section.reference))
    return canvas_text(tokenizer, shown, show_masks=False)


def window_prompts(
    tokenizer: Tokenizer, sections: list[Section], canvases: list[Canvas]
) -> list[list[int]]:
    """One prompt per block, as `Drafter._prompt` builds it at the start of a round."""
    prompts = []
    for i, section in enumerate(sections):
        before = after = ""
        if i > 0:
            before = neighbour_text(tokenizer, sections[i - 1], canvases[i - 1])[-CONTEXT_CHARS:]
        if i + 1 < len(sections):
            after = neighbour_text(tokenizer, sections[i + 1], canvases[i + 1])[:CONTEXT_CHARS]
        prompts.append(
            prompt_ids(
                tokenizer,
                PROMPT_BUDGET,
                INSTRUCTION,
                section.heading,
                section.evidence,
                before,
                after,
            )
        )
    return prompts


def naive_prefix(tokenizer: Tokenizer, sections: list[Section]) -> list[int]:
    """The prompt of the single sequence: instruction, then every section's heading and sources."""
    lines = [f"Task: {INSTRUCTION}"]
    for k, section in enumerate(sections, start=1):
        lines += [f"Section {k} to write: {section.heading}", "Sources:"]
        lines += [
            f"[{hit.filename}, p. {hit.page_label}] {' '.join(hit.text.split())}"
            for hit in edges_first(section.evidence)
        ]
    return build_prompt_ids(tokenizer, SYSTEM, "\n".join(lines))


def naive_inputs(prefix: list[int], canvases: list[Canvas]) -> Inputs:
    """One sequence: the prefix, then the four canvases back to back."""
    input_ids = torch.cat([torch.tensor(prefix, dtype=torch.long)] + [c.tokens for c in canvases])
    positions = torch.cat(
        [torch.zeros(len(prefix), dtype=torch.bool)] + [c.masked for c in canvases]
    )
    return input_ids[None], torch.ones_like(input_ids)[None], positions[None]


def naive_logits(denoiser: HFMaskedLMDenoiser, inputs: Inputs) -> Tensor:
    """The model's full forward: LM head at every position; then the masked rows, in order."""
    input_ids, attention_mask, positions = inputs
    with torch.inference_mode():
        logits = denoiser.model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logits[positions]


def window_logits(denoiser: HFMaskedLMDenoiser, inputs: Inputs) -> Tensor:
    return denoiser.logits(*inputs)


def cached_logits(denoiser: HFMaskedLMDenoiser, cache: PromptCache, inputs: Inputs) -> Tensor:
    """The engine's cached step: only the canvases run, against the round's prompt cache."""
    canvas_ids, canvas_real, positions = inputs
    hidden = denoiser.context_cache.canvas_hidden(cache, canvas_ids, canvas_real)
    return denoiser.context_cache.head(hidden[positions])


def agreement(exact: Tensor, cached: Tensor) -> tuple[float, float]:
    """Top-1 agreement of the proposals, and mean KL(exact || cached) over the masked rows."""
    exact_log, cached_log = exact.float().log_softmax(-1), cached.float().log_softmax(-1)
    top1 = (exact_log.argmax(-1) == cached_log.argmax(-1)).float().mean().item()
    kl = (exact_log.exp() * (exact_log - cached_log)).sum(-1).mean().item()
    return top1, kl


# ---------------------------------------------------------------------------------------------
# Measuring one variant (in-process; `main` runs each in a subprocess)


def non_embedding_params(model: nn.Module) -> int:
    """Parameters outside the token/position embeddings and the (usually tied) output layer."""
    skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    output = model.get_output_embeddings()
    if output is not None:
        skip |= {id(p) for p in output.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB ({} where /proc is unavailable)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = (line.split(":") for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) for name, value in fields}


def reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return "VmHWM" in memory_status()


def measure_memory(reset: bool, before_kb: int) -> dict:
    if reset:
        peak_kb = memory_status()["VmHWM"]
        method = "VmHWM over the timed steps (reset via /proc/self/clear_refs)"
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        method = "ru_maxrss of the whole process (loading included)"
    return {
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_before_steps_mb": round(before_kb / 1024, 1),
        "step_memory_mb": round((peak_kb - before_kb) / 1024, 1),
        "memory_method": method,
    }


@dataclass
class StepRecord:
    total_s: float
    build_s: float
    forward_s: float
    commit_s: float
    positions: int  # real tokens through the model
    padded_positions: int
    head_rows: int  # rows the LM head was evaluated at


def run_variant(
    folder: str | Path, variant: str, steps: int = 16, measure_agreement: bool = True
) -> dict:
    """Denoise the synthetic draft with one variant; timings, counts and memory as a dict."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    cached = variant in ("ours", "int8")
    denoiser = HFMaskedLMDenoiser(folder, device="cpu", int8=variant == "int8")
    reference = HFMaskedLMDenoiser(folder, device="cpu") if variant == "int8" else denoiser
    tokenizer = denoiser.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    forbidden = forbidden_token_ids(tokenizer, denoiser.vocab_size, denoiser.mask_token_id)
    sections = synthetic_sections(tokenizer)
    canvases = [Canvas.empty(BLOCK_TOKENS, denoiser.mask_token_id) for _ in sections]

    prefix = naive_prefix(tokenizer, sections)
    prompts = window_prompts(tokenizer, sections, canvases)
    cache = denoiser.context_cache.encode_prompts(prompts, pad_id)

    def inputs_for(current: list[Canvas]) -> Inputs:
        if variant == "naive":
            return naive_inputs(prefix, current)
        if variant == "exact":
            return pack_batch(prompts, current, pad_id)
        return pack_batch([[]] * len(current), current, pad_id)

    def forward(inputs: Inputs) -> Tensor:
        if variant == "naive":
            return naive_logits(denoiser, inputs)
        if variant == "exact":
            return window_logits(denoiser, inputs)
        return cached_logits(denoiser, cache, inputs)  # ours, int8

    forward(inputs_for(canvases))  # warm-up, untimed and not counted
    reset = reset_peak_rss()
    before_kb = memory_status().get("VmRSS", 0)
    generator = torch.Generator().manual_seed(SEED)
    records, agreements = [], []
    for s in range(steps):
        t0 = time.perf_counter()
        new_round = s > 0 and s % ROUND == 0
        if new_round and variant != "naive":
            prompts = window_prompts(tokenizer, sections, canvases)
            if cached:
                cache = denoiser.context_cache.encode_prompts(prompts, pad_id)
        inputs = inputs_for(canvases)
        t1 = time.perf_counter()
        logits = forward(inputs)
        t2 = time.perf_counter()
        if cached and measure_agreement and s % ROUND == ROUND - 1:
            # the stalest step of a round: the cache is ROUND - 1 steps old (untimed)
            exact = window_logits(reference, pack_batch(prompts, canvases, pad_id))  # fp32
            agreements.append(agreement(exact, logits))
        t3 = time.perf_counter()
        canvases = step(
            canvases,
            logits,
            steps_left=[steps - s] * len(canvases),
            step_index=[s + 1] * len(canvases),
            settings=SamplerSettings(),
            forbidden=forbidden,
            generator=generator,
        )
        t4 = time.perf_counter()
        input_ids, attention_mask, _ = inputs
        positions = int(attention_mask.sum())
        if cached and (s == 0 or new_round):
            positions += sum(map(len, prompts))  # the round's prompt encoding
        records.append(
            StepRecord(
                (t2 - t0) + (t4 - t3),
                t1 - t0,
                t2 - t1,
                t4 - t3,
                positions,
                input_ids.numel(),
                input_ids.numel() if variant == "naive" else logits.shape[0],
            )
        )
        log(f"  {variant}: step {s + 1}/{steps} {1000 * records[-1].total_s:.0f} ms")
    memory = measure_memory(reset, before_kb)
    # parameter counts from the fp32 model: quantised layers hold packed weights, not parameters
    result = summarise(reference, variant, sections, canvases, records) | memory
    if agreements:
        result["cache_top1_agreement"] = round(statistics.mean(a for a, _ in agreements), 4)
        result["cache_kl"] = round(statistics.mean(k for _, k in agreements), 5)
    return result


def summarise(
    denoiser: HFMaskedLMDenoiser,
    variant: str,
    sections: list[Section],
    canvases: list[Canvas],
    records: list[StepRecord],
) -> dict:
    def median_ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 2)

    seconds = sum(r.total_s for r in records)
    committed = sum(int((c.state != State.MASKED).sum()) for c in canvases)
    output = denoiser.model.get_output_embeddings()
    return {
        "variant": variant,
        "forward_passes": len(records),
        "ms_per_step": median_ms([r.total_s for r in records]),
        "mean_ms_per_step": round(1000 * seconds / len(records), 2),
        "build_ms": median_ms([r.build_s for r in records]),
        "forward_ms": median_ms([r.forward_s for r in records]),
        "commit_ms": median_ms([r.commit_s for r in records]),
        "seconds_per_draft": round(seconds, 3),
        "committed_tokens": committed,
        "committed_tokens_per_s": round(committed / seconds, 1),
        "masks_left": sum(c.n_masked for c in canvases),
        "positions_per_step": round(statistics.mean(r.positions for r in records), 1),
        "padded_positions_per_step": round(statistics.mean(r.padded_positions for r in records), 1),
        "lm_head_rows_per_step": round(statistics.mean(r.head_rows for r in records), 1),
        "evidence_tokens_per_section": evidence_tokens(denoiser.tokenizer, sections),
        "non_embedding_params": non_embedding_params(denoiser.model),
        "lm_head_params": output.weight.numel() if output is not None else 0,
        "threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------------
# Floors, models, subprocesses


def matmul_peak_gflops(size: int = MATMUL_SIZE, repeats: int = MATMUL_REPEATS) -> float:
    """Best fp32 GFLOP/s of a size^3 matmul at torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def add_floor(result: dict, peak_gflops: float) -> dict:
    """Floor ms per step (2 x non-embedding params x positions / peak) and how far above it."""
    body = 2 * result["non_embedding_params"] * result["positions_per_step"]
    head = 2 * result["lm_head_params"] * result["lm_head_rows_per_step"]
    floor_ms = 1000 * body / (peak_gflops * 1e9)
    with_head_ms = 1000 * (body + head) / (peak_gflops * 1e9)
    return result | {
        "floor_ms": round(floor_ms, 2),
        "over_floor": round(result["ms_per_step"] / floor_ms, 2),
        "floor_with_head_ms": round(with_head_ms, 2),
        "over_floor_with_head": round(result["ms_per_step"] / with_head_ms, 2),
    }


def model_folder(cache: Path, shape: str) -> Path:
    """The shape's model folder in the cache, built (random weights) the first time."""
    folder = cache / shape
    if (folder / "config.json").is_file():
        return folder
    log(f"building the {shape} model in {folder}")
    partial = cache / f"{shape}.partial"
    if shape == "tiny":
        build_tiny_modernbert(partial, seed=SEED)
    else:
        build_shaped_modernbert(partial, size=shape, seed=SEED)
    partial.rename(folder)
    return folder


def run_in_subprocess(folder: Path, variant: str, steps: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--folder", str(folder)]
    command += ["--steps", str(steps), "--threads", str(threads)]
    root = str(Path(__file__).resolve().parent.parent)  # so the child imports this `engine`
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
    return json.loads(done.stdout)


def bench_shape(
    cache: Path, shape: str, variants: list[str], steps: int, threads: int, peak: float
) -> dict:
    folder = model_folder(cache, shape)
    results = {}
    for variant in variants:
        log(f"[{shape}] {variant}")
        results[variant] = add_floor(run_in_subprocess(folder, variant, steps, threads), peak)
    for variant in ("exact", "ours", "int8"):
        if {"naive", variant} <= results.keys():
            # equal passes, so the ratio of whole drafts is the ratio of mean steps; the median
            # would hide the rounds' prompt encodings
            ratio = results["naive"]["seconds_per_draft"] / results[variant]["seconds_per_draft"]
            results[f"speedup_per_step_{variant}"] = round(ratio, 2)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=16, help="denoising steps per block")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="model folders")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= BLOCK_TOKENS:
        parser.error(f"--steps must be between 1 and {BLOCK_TOKENS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_variant(args.folder, args.child, args.steps)))
        return
    threads = torch.get_num_threads()
    peak = matmul_peak_gflops()
    log(f"fp32 matmul peak: {peak:.1f} GFLOP/s on {threads} threads")
    args.cache.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "matmul_peak_gflops": round(peak, 1),
        },
        "draft": {
            "sections": SECTIONS,
            "block_tokens": BLOCK_TOKENS,
            "evidence_tokens_per_section": EVIDENCE_TOKENS,
            "passages_per_section": PASSAGES,
            "steps_per_block": args.steps,
            "commits_per_block_per_step": BLOCK_TOKENS / args.steps,
        },
        "shapes": {
            shape: bench_shape(args.cache, shape, args.variants, args.steps, threads, peak)
            for shape in args.shapes
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
