"""Denoising speed at real shapes: the references' recipes, the engine and its speed options.

    python bench/denoise.py [--shapes tiny base large] [--steps 16] [--threads N]
                            [--variants naive exact threshold cache fast-dllm int8] [--cache DIR]

Prints JSON on stdout (progress goes to stderr). Every variant denoises the same synthetic draft:
4 sections x 128 masked tokens, each section with 384 tokens of evidence (3 passages of filler
prose, as `SearchHit`s served by a fixed stand-in for the library, so no embedding model is
involved), with BERT-chat's published recipe, which is LLaDA's too (`engine.families`): sub-blocks
of 32 tokens decoded left to right, one token per sub-block per step (128 steps per section),
low-confidence order, argmax proposals, one seeded generator. Sections are held to their full
length (`min_tokens` = 128): random weights would otherwise end some early at a random end token,
and the variants would time different shapes.

Variants:
- `naive`: the reference loop as LLaDA's `generate.py` writes it: one sequence holding the
  instruction, every section's heading and evidence, then all four canvases; every step
  recomputes the whole sequence and evaluates the LM head at every position (the model's full
  forward, `.logits`), then commits with `engine.sampler.step`, one token per sub-block. All four
  sections step together, so it takes as many forward passes as `exact` (LLaDA would decode them
  one after another: 4x the passes).
- `exact`: the engine (`Drafter.start` / `Drafter.run`, everything a real step does: retrieval
  refresh every 4 steps, each section's own prompt with its neighbours, one batched pass, the LM
  head at the masks of the current sub-blocks only, the commit, saving the draft), fp32, no cache;
- `threshold`: as `exact` with Fast-dLLM's confidence threshold (0.9): random weights are never
  that confident, so it commits one token per sub-block per step like `exact`; what it saves on
  a real checkpoint is measured by `bench/fidelity.py --model DIR`;
- `cache`: as `exact` with the context cache (`DraftSettings(context_cache=True)`: Fast-dLLM's
  prefix cache, a full pass at each sub-block start or new prompt, reuse within);
- `fast-dllm`: cache and threshold together, the combination behind Fast-dLLM's figures;
- `int8`: `fast-dllm` with dynamic int8 linear layers (the "fast on CPU" preset plus the cache).

Models: tiny (`build_tiny_modernbert`), ModernBERT-base and -large shapes
(`build_shaped_modernbert`, random weights: timing does not depend on them; they carry the tiny
tokenizer, whose limit is raised to ModernBERT's 8192 so that the context is BERT-chat's trained
1024 tokens and no evidence is clipped), built once into a cache folder and loaded through
`engine.denoiser.load_denoiser`, the real loading path, in float32 on the CPU.

Per variant, each in its own subprocess (so memory and allocator state do not leak between them):
- an untimed warm-up step on a separate draft, then the first `--steps` steps of a fresh draft,
  each timed end to end; `ms_per_step` is the median, `mean_ms_per_step` the mean (a cached
  step is the median; the mean includes the full passes);
- `committed_tokens_per_s`: tokens committed over the timed steps / their total time, and
  `speedup_vs_naive` its ratio to `naive`'s (equal passes here, so also the ratio of mean steps);
- `prompt_tokens_per_section`: the mean length of the sections' prompts (the engine's own
  prompts: random neighbours' text re-tokenises longer than prose would);
- memory: the process's resident-set high-water mark (VmHWM) over the timed steps, after resetting
  it through /proc/self/clear_refs, so model loading does not count; `step_memory_mb` is that peak
  minus the resident set just before the steps, and `peak_rss_mb` the peak itself (weights
  included). Where the reset is not possible, `ru_maxrss` of the whole process is reported
  instead and `memory_method` says so.

`published` holds Fast-dLLM's own figures (LLaDA-8B-Instruct on one A100, GSM8K 5-shot) as
reference numbers: other model, other hardware; compare ratios, not tokens per second.
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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine.denoiser import (
    Denoiser,
    HFMaskedLMDenoiser,
    build_prompt_ids,
    forbidden_token_ids,
    load_denoiser,
)
from engine.draft import DraftSettings
from engine.draft_store import DraftStore
from engine.drafting import Drafter, section_query
from engine.families import BERT_CHAT, FAST_THRESHOLD
from engine.prompting import SYSTEM, edges_first
from engine.sampler import Canvas, State, active, step
from engine.search_hit import SearchHit
from engine.testmodels import build_shaped_modernbert, build_tiny_modernbert

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer

SHAPES = ("tiny", "base", "large")
VARIANTS = ("naive", "exact", "threshold", "cache", "fast-dllm", "int8")
ENGINE_OPTIONS = {  # variant: (threshold, context cache, int8)
    "exact": (None, False, False),
    "threshold": (FAST_THRESHOLD, False, False),
    "cache": (None, True, False),
    "fast-dllm": (FAST_THRESHOLD, True, False),
    "int8": (FAST_THRESHOLD, True, True),
}
RECIPE = BERT_CHAT.recipe  # sub-blocks of 32, one token per step: LLaDA's recipe too
REFRESH_EVERY = 4  # DraftSettings.refresh_every
SECTIONS = 4
BLOCK_TOKENS = 128
EVIDENCE_TOKENS = 384  # per section
PASSAGES = 3  # DraftSettings.passages
TOKENIZER_LIMIT = 8192  # ModernBERT's own tokenizer limit
SEED = 0
DEFAULT_CACHE = Path("/tmp/palimpsest-bench-denoise")

PUBLISHED = {
    "label": "published figures, other model and hardware: not measured here",
    "source": "Fast-dLLM (Wu et al., 2025), ../shared/REFERENCES.md",
    "model": "LLaDA-8B-Instruct",
    "hardware": "one NVIDIA A100",
    "task": "GSM8K 5-shot",
    "tokens_per_s": {
        "256": {"llada": 6.7, "fast_dllm": 54.4, "speedup": 8.1},
        "512": {"llada": 3.2, "fast_dllm": 35.3, "speedup": 11.0},
    },
    "speedup_cache_alone": 3.2,
    "speedup_threshold_alone": 2.5,
    "accuracy_256": {"llada": 79.3, "fast_dllm": 78.5},
}

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
        sections.append(Section(heading, hits))
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
# The naive reference loop


Inputs = tuple[Tensor, Tensor, Tensor]  # input_ids, attention_mask, positions (as pack_batch)


class FixedEvidence:
    """The library as the drafter sees it (`search_many`), serving each section its own
    synthetic passages: a query is the section's heading, then its text (`section_query`)."""

    def __init__(self, sections: list[Section]):
        self.sections = sections

    def search_many(
        self, queries: list[str], k: int = 5, doc_ids: list[list[str] | None] | None = None
    ) -> list[list[SearchHit]]:
        return [self.hits(query)[:k] for query in queries]

    def hits(self, query: str) -> list[SearchHit]:
        for section in self.sections:
            if query.startswith(section_query(INSTRUCTION, section.heading, "")):
                return section.evidence
        raise ValueError(f"no section for the query {query[:80]!r}")


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
    """One sequence: the prefix, then the four canvases back to back; the rows `step` reads are
    the masks of each canvas's current sub-block."""
    input_ids = torch.cat([torch.tensor(prefix, dtype=torch.long)] + [c.tokens for c in canvases])
    positions = torch.cat(
        [torch.zeros(len(prefix), dtype=torch.bool)]
        + [active(c, RECIPE.sub_block) for c in canvases]
    )
    return input_ids[None], torch.ones_like(input_ids)[None], positions[None]


def naive_logits(denoiser: HFMaskedLMDenoiser, inputs: Inputs) -> Tensor:
    """The model's full forward: LM head at every position; then the rows `step` reads."""
    input_ids, attention_mask, positions = inputs
    with torch.inference_mode():
        logits = denoiser.model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logits[positions]


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


def naive_steps(
    denoiser: HFMaskedLMDenoiser, sections: list[Section], settings: DraftSettings, steps: int
) -> tuple[list[Canvas], list[float], int]:
    """The reference loop for `steps` steps after an untimed warm-up pass: the canvases, each
    step's seconds, and the prompt length. Every canvas commits in its current sub-block, with
    the sub-block's share of the steps, as `Drafter` counts them."""
    tokenizer = denoiser.tokenizer
    forbidden = forbidden_token_ids(tokenizer, denoiser.vocab_size, denoiser.mask_token_id)
    prefix = naive_prefix(tokenizer, sections)
    canvases = [Canvas.empty(BLOCK_TOKENS, denoiser.mask_token_id) for _ in sections]
    naive_logits(denoiser, naive_inputs(prefix, canvases))  # warm-up, untimed and not counted
    generator = torch.Generator().manual_seed(SEED)
    per_window = settings.steps_per_window()
    times = []
    for at in range(1, steps + 1):
        started = time.perf_counter()
        canvases = step(
            canvases,
            naive_logits(denoiser, naive_inputs(prefix, canvases)),
            steps_left=[per_window - (at - 1) % per_window] * len(canvases),
            steps_total=[per_window] * len(canvases),
            step_index=[at] * len(canvases),
            settings=settings.sampler(),
            forbidden=forbidden,
            generator=generator,
        )
        times.append(time.perf_counter() - started)
        log(f"  naive: step {at}/{steps} {1000 * times[-1]:.0f} ms")
    return canvases, times, len(prefix)


def engine_steps(
    denoiser: Denoiser,
    sections: list[Section],
    settings: DraftSettings,
    steps: int,
    scratch: Path,
) -> tuple[list[Canvas], list[float], float]:
    """The first `steps` steps of a draft through `Drafter`, after an untimed warm-up step on a
    separate draft: the canvases, each step's seconds, and the mean prompt length."""
    drafter = Drafter(FixedEvidence(sections), denoiser, DraftStore(scratch / "drafts.sqlite3"))
    headings = [section.heading for section in sections]
    warm_up = drafter.start(INSTRUCTION, headings, settings, seed=SEED)
    for _ in drafter.run(warm_up, stop_after=1):
        pass
    draft = drafter.start(INSTRUCTION, headings, settings, seed=SEED)
    events = drafter.run(draft, stop_after=steps)
    times, prompt_tokens = [], []
    while True:
        started = time.perf_counter()
        if next(events, None) is None:
            break
        times.append(time.perf_counter() - started)
        prompt_tokens.append(statistics.mean(len(block.prompt or []) for block in draft.blocks))
        log(f"  step {len(times)}/{steps} {1000 * times[-1]:.0f} ms")
    return [block.canvas for block in draft.blocks], times, statistics.mean(prompt_tokens)


def settings_for(folder: str | Path, variant: str) -> DraftSettings:
    """The recipe, sections held to full length, and the variant's speed options."""
    threshold, cache, int8 = ENGINE_OPTIONS.get(variant, (None, False, False))
    return DraftSettings.from_recipe(
        RECIPE,
        model=str(folder),
        block_tokens=BLOCK_TOKENS,
        passages=PASSAGES,
        refresh_every=REFRESH_EVERY,
        min_tokens=BLOCK_TOKENS,
        threshold=threshold,
        context_cache=cache,
        int8=int8,
    )


def run_variant(folder: str | Path, variant: str, steps: int = 16) -> dict:
    """Denoise the synthetic draft with one variant; timings, counts and memory as a dict."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    settings = settings_for(folder, variant)
    denoiser = load_denoiser(str(folder), device="cpu", int8=settings.int8)
    sections = synthetic_sections(denoiser.tokenizer)
    with tempfile.TemporaryDirectory(prefix="palimpsest-denoise-") as scratch:
        reset = reset_peak_rss()
        before_kb = memory_status().get("VmRSS", 0)
        if variant == "naive":
            canvases, times, prompt_tokens = naive_steps(denoiser, sections, settings, steps)
        else:
            canvases, times, prompt_tokens = engine_steps(
                denoiser, sections, settings, steps, Path(scratch)
            )
        memory = measure_memory(reset, before_kb)
    seconds = sum(times)
    committed = sum(int((c.state != State.MASKED).sum()) for c in canvases)
    return {
        "variant": variant,
        "threshold": settings.threshold,
        "context_cache": settings.context_cache,
        "int8": bool(getattr(denoiser, "int8", False)),
        "forward_passes": len(times),
        "ms_per_step": round(1000 * statistics.median(times), 2),
        "mean_ms_per_step": round(1000 * seconds / len(times), 2),
        "seconds": round(seconds, 3),
        "committed_tokens": committed,
        "tokens_per_step": round(committed / len(times), 2),
        "committed_tokens_per_s": round(committed / seconds, 4),
        "prompt_tokens_per_section": round(prompt_tokens, 1),
        "evidence_tokens_per_section": evidence_tokens(denoiser.tokenizer, sections),
        "threads": torch.get_num_threads(),
    } | memory


# ---------------------------------------------------------------------------------------------
# Models, subprocesses


def model_folder(cache: Path, shape: str) -> Path:
    """The shape's model folder in the cache, built (random weights) the first time, with the
    tokenizer's limit raised to `TOKENIZER_LIMIT`."""
    folder = cache / shape
    if (folder / "config.json").is_file():
        return folder
    log(f"building the {shape} model in {folder}")
    partial = cache / f"{shape}.partial"
    if shape == "tiny":
        build_tiny_modernbert(partial, seed=SEED)
    else:
        build_shaped_modernbert(partial, size=shape, seed=SEED)
    config_path = partial / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) | {"model_max_length": TOKENIZER_LIMIT}
    config_path.write_text(json.dumps(config, indent=2))
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


def bench_shape(cache: Path, shape: str, variants: list[str], steps: int, threads: int) -> dict:
    folder = model_folder(cache, shape)
    results = {}
    for variant in variants:
        log(f"[{shape}] {variant}")
        results[variant] = run_in_subprocess(folder, variant, steps, threads)

    def rate(result: dict) -> float:  # unrounded committed tokens per second
        return result["committed_tokens"] / result["seconds"]

    for name in ("naive", "exact"):
        if name in results:
            for result in results.values():
                result[f"speedup_vs_{name}"] = round(rate(result) / rate(results[name]), 2)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--steps", type=int, default=16, help="timed steps: the first of a section's 128"
    )
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
    args.cache.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "draft": {
            "sections": SECTIONS,
            "block_tokens": BLOCK_TOKENS,
            "evidence_tokens_per_section": EVIDENCE_TOKENS,
            "passages_per_section": PASSAGES,
            "recipe": f"{BERT_CHAT.name} / LLaDA: sub-blocks of {RECIPE.sub_block}, "
            f"{RECIPE.tokens_per_step:g} token per sub-block per step",
            "steps_per_section": RECIPE.steps_for(BLOCK_TOKENS),
            "timed_steps": args.steps,
        },
        "shapes": {
            shape: bench_shape(args.cache, shape, args.variants, args.steps, threads)
            for shape in args.shapes
        },
        "published": PUBLISHED,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
