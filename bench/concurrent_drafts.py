"""Several drafts at once through one shared denoiser: taking turns against batched steps.

    python bench/concurrent_drafts.py [--shapes tiny base] [--drafts 1 2 4 8]
                                      [--steps N] [--sections N] [--threads N] [--cache DIR]

Prints JSON on stdout (progress goes to stderr). For each model shape and each number of
concurrent drafts, every draft runs on its own thread through `Drafter.run` (everything a real
step does: the refresh of its evidence, its prompts, one pass for its sections, the commit,
saving the draft), all sharing one loaded denoiser, in two modes measured in the same process:
- `turns`: the denoiser itself, as the app shares it today: each draft's pass runs on its own
  thread, and concurrent passes compete for the cores;
- `batched`: the same denoiser behind `engine.step_batcher.StepBatcher` (PALIMPSEST_BATCH_DRAFTS),
  which runs every step waiting into one forward pass.

The drafts are the synthetic ones of bench/denoise.py (evidence served by its `FixedEvidence`, so
no embedding model runs), BERT-chat's recipe (sub-blocks of 32, one token per sub-block per
step), sections held to full length. Draft d reads 1 + d % 3 passages, so the drafts' prompts
differ in length and a batched pass pays for padding, as it would with real drafts.

Per mode and count, after one untimed warm-up step per draft (all drafts at once):
- `committed_tokens_per_s`: tokens committed by all drafts over the timed steps / the wall
  time from their common start until the last one finished;
- `p95_step_ms` (and `p50_step_ms`): the time of one step of one draft (between two events of
  its run), pooled over all drafts; `worst_draft_p95_ms`: the largest of the drafts' own p95;
- `forward_pass_s`: seconds spent inside the model's forward passes (warm-up included; passes
  that run at once on several threads, as in `turns`, each count in full, so this is the
  model's share of the work, not of the wall time);
- for `batched`, `steps_per_pass`: the drafts' steps served per forward pass on average;
- `batched_vs_turns`: the ratios of throughput and of p95 step time, batched over turns.

Models: tiny (`build_tiny_modernbert`) and ModernBERT-base's shape (`build_shaped_modernbert`,
random weights: timing does not depend on them), built once into the cache folder shared with
bench/denoise.py, loaded through `engine.denoiser.load_denoiser` in float32 on the CPU. The plan
per shape (sections per draft, canvas tokens, timed steps) is chosen so that the base shape's
eight drafts finish in minutes on 2 cores; `--sections` and `--steps` override it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's `engine`, wherever the package is installed

from denoise import (  # noqa: E402
    DEFAULT_CACHE,
    HEADINGS,
    INSTRUCTION,
    RECIPE,
    FixedEvidence,
    model_folder,
    synthetic_sections,
)

from engine.denoiser import Denoiser, load_denoiser  # noqa: E402
from engine.draft import Draft, DraftSettings  # noqa: E402
from engine.draft_store import DraftStore  # noqa: E402
from engine.drafting import Drafter  # noqa: E402
from engine.sampler import State  # noqa: E402
from engine.step_batcher import StepBatcher  # noqa: E402

SHAPES = ("tiny", "base")
MODES = ("turns", "batched")
SEED = 0


@dataclass(frozen=True)
class Plan:
    sections: int  # per draft
    block_tokens: int  # per section
    steps: int  # timed steps per draft


PLANS = {
    "tiny": Plan(sections=3, block_tokens=128, steps=16),
    "base": Plan(sections=1, block_tokens=64, steps=6),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linearly interpolated (as numpy's default)."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def settings_for(folder: Path, plan: Plan, passages: int) -> DraftSettings:
    return DraftSettings.from_recipe(
        RECIPE,
        model=str(folder),
        block_tokens=plan.block_tokens,
        passages=passages,
        refresh_every=4,
        min_tokens=plan.block_tokens,
    )


def run_drafts(
    denoiser: Denoiser, folder: Path, plan: Plan, count: int, scratch: Path
) -> tuple[float, list[list[float]], int]:
    """`count` drafts on threads, started together, each for one untimed step and then
    `plan.steps` timed ones: the wall time of the timed part, each draft's step times, and the
    tokens committed in the timed steps."""
    sections = synthetic_sections(denoiser.tokenizer)[: plan.sections]
    headings = [section.heading for section in sections]
    store = DraftStore(scratch / f"drafts-{count}.sqlite3")
    drafter = Drafter(FixedEvidence(sections), denoiser, store)
    drafts = [
        drafter.start(INSTRUCTION, headings, settings_for(folder, plan, 1 + d % 3), seed=SEED + d)
        for d in range(count)
    ]
    warmed, go = threading.Barrier(count + 1), threading.Barrier(count + 1)
    times: list[list[float]] = [[] for _ in range(count)]
    committed_before = [0] * count
    errors: list[BaseException] = []

    def draft_loop(d: int) -> None:
        try:
            events = drafter.run(drafts[d], stop_after=1 + plan.steps)
            next(events)  # the warm-up step, untimed
            committed_before[d] = committed(drafts[d])
            warmed.wait()
            go.wait()
            while True:
                started = time.perf_counter()
                if next(events, None) is None:
                    return
                times[d].append(time.perf_counter() - started)
        except BaseException as error:
            errors.append(error)
            warmed.abort()
            go.abort()

    threads = [threading.Thread(target=draft_loop, args=(d,)) for d in range(count)]
    for thread in threads:
        thread.start()
    warmed.wait()
    started = time.perf_counter()
    go.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    tokens = sum(
        committed(draft) - before for draft, before in zip(drafts, committed_before, strict=True)
    )
    return wall, times, tokens


def committed(draft: Draft) -> int:
    return sum(int((block.canvas.state != State.MASKED).sum()) for block in draft.blocks)


class PassTimer:
    """The denoiser, adding up the seconds spent inside its forward passes (passes running at
    once on several threads each count in full)."""

    def __init__(self, inner: Denoiser):
        self.inner = inner
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        started = time.perf_counter()
        logits = self.inner.logits(input_ids, attention_mask, positions)
        with self._lock:
            self.seconds += time.perf_counter() - started
        return logits


def measure(denoiser: Denoiser, folder: Path, plan: Plan, count: int, mode: str) -> dict:
    timer = PassTimer(denoiser)
    shared = StepBatcher(timer) if mode == "batched" else timer
    with tempfile.TemporaryDirectory(prefix="palimpsest-concurrent-") as scratch:
        wall, times, tokens = run_drafts(shared, folder, plan, count, Path(scratch))
    pooled = [t for draft in times for t in draft]
    result = {
        "drafts": count,
        "mode": mode,
        "wall_s": round(wall, 3),
        "committed_tokens": tokens,
        "committed_tokens_per_s": round(tokens / wall, 2),
        "p50_step_ms": round(1000 * statistics.median(pooled), 1),
        "p95_step_ms": round(1000 * percentile(pooled, 95), 1),
        "worst_draft_p95_ms": round(1000 * max(percentile(t, 95) for t in times), 1),
        "forward_pass_s": round(timer.seconds, 2),  # warm-up step included
    }
    if isinstance(shared, StepBatcher):
        result["steps_per_pass"] = round(shared.requests / shared.passes, 2)
    return result


def bench_shape(cache: Path, shape: str, plan: Plan, counts: list[int]) -> dict:
    folder = model_folder(cache, shape)
    denoiser = load_denoiser(str(folder), device="cpu")
    rows = []
    for count in counts:
        pair = {}
        for mode in MODES:
            log(f"[{shape}] {count} draft(s), {mode}")
            pair[mode] = measure(denoiser, folder, plan, count, mode)
            log(f"  {json.dumps(pair[mode])}")
        turns, batched = pair["turns"], pair["batched"]
        ratios = {
            "throughput": round(
                batched["committed_tokens_per_s"] / turns["committed_tokens_per_s"], 2
            ),
            "p95_step": round(batched["p95_step_ms"] / turns["p95_step_ms"], 2),
        }
        rows.append({"drafts": count, **pair, "batched_vs_turns": ratios})
    return {
        "plan": {
            "sections_per_draft": plan.sections,
            "block_tokens": plan.block_tokens,
            "timed_steps_per_draft": plan.steps,
            "passages_per_draft": "1 + d % 3 (of 128 tokens each)",
        },
        "runs": rows,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--drafts", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, help="timed steps per draft (default: per shape)")
    parser.add_argument(
        "--sections", type=int, choices=range(1, len(HEADINGS) + 1), help="sections per draft"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="model folders")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    shapes = {}
    for shape in args.shapes:
        plan = PLANS[shape]
        plan = Plan(
            sections=args.sections or plan.sections,
            block_tokens=plan.block_tokens,
            steps=args.steps or plan.steps,
        )
        shapes[shape] = bench_shape(args.cache, shape, plan, args.drafts)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "recipe": f"sub-blocks of {RECIPE.sub_block}, {RECIPE.tokens_per_step:g} token per "
        "sub-block per step, sections held to full length",
        "shapes": shapes,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
