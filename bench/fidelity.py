"""Fidelity of the speed options: how often each changes the committed tokens of exact decoding.

    python bench/fidelity.py [--model DIR_OR_HUB_ID ...] [--library DIR] [--sections N]
                             [--tokens T] [--lower-tau 0.7] [--seed S] [--json]

With `--model`, a checkpoint a user has (a folder or a hub id already downloaded); without it, the
tiny random BERT and ModernBERT of `engine.testmodels`, built into a temporary folder, so the
script runs anywhere and cannot rot (their text is meaningless: on them it checks the plumbing and
measures int8's and the cache's drift on random weights, not a real model's). The library is
`--library DIR` (opened read-only in spirit: the benchmark's drafts go to a temporary store), or
the sample PDFs of sample_docs/ ingested into a temporary one.

Every variant drafts the same instruction and sections with the same seed through the public
engine API (`Drafter.start` / `Drafter.run`), starting from the family's published recipe
(`DraftSettings.from_recipe`):
- `exact`: the recipe as published, fp32, no cache: the baseline;
- `threshold-0.9`: Fast-dLLM's confidence threshold (commit every proposal at least 0.9
  confident, at least one per sub-block), and `threshold-<tau>` with a lower tau (`--lower-tau`);
- `int8`: dynamic int8 linear layers (CPU masked LMs only; `applies` says whether it ran);
- `context-cache`: Fast-dLLM's prefix cache (`DraftSettings(context_cache=True)`; only models
  with a cache implementation, `applies` says whether it ran);
- `fast-cpu`: the "fast on CPU" preset (`DraftSettings.from_recipe(recipe, fast=True)`).

Per variant:
- `token_diff`: of the committed tokens of every section up to its end (the first end token),
  the share that differ from the baseline's at the same position; a section that ends earlier or
  later counts the positions only one of them has as different;
- `section_text_diff`: the share of sections whose text differs from the baseline's;
- `forward_passes` (draft steps; all sections advance in one batched pass) and
  `passes_vs_exact` (under 1: what the threshold saves);
- `ms_per_step` (median over the draft's steps, end to end: retrieval refresh, prompts, forward
  pass, commit, save) and `step_time_vs_exact`, the ratio against the baseline measured in the
  same run; `seconds` for the whole draft and `committed_tokens_per_s`.

Prints a table (or with `--json` the JSON report) on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.config import Settings  # noqa: E402
from engine.draft import DraftSettings  # noqa: E402
from engine.draft_store import DraftStore  # noqa: E402
from engine.drafting import Drafter  # noqa: E402
from engine.families import FAST_THRESHOLD, Family  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.models import Denoisers  # noqa: E402
from engine.testmodels import build_tiny_bert, build_tiny_modernbert  # noqa: E402

SAMPLE_DIR = REPO_ROOT / "sample_docs"
INSTRUCTION = "Draft the data protection clauses of a services agreement, following the sources."
HEADINGS = [
    "Security of processing",
    "Data retention",
    "Termination",
    "Confidentiality",
    "Liability",
    "Governing law",
    "Sub-processors",
    "Notices",
]
LOWER_TAU = 0.7
BASELINE = "exact"
WARM_UP_STEPS = 2
TINY_MODELS = {"tiny-bert": build_tiny_bert, "tiny-modernbert": build_tiny_modernbert}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    """One way of drafting: overrides of the recipe, on an fp32 or an int8 denoiser."""

    name: str
    fast: bool = False  # the "fast on CPU" preset
    threshold: float | None = None
    int8: bool | None = None
    context_cache: bool | None = None


def variants(lower_tau: float) -> list[Variant]:
    return [
        Variant(BASELINE),
        Variant(f"threshold-{FAST_THRESHOLD}", threshold=FAST_THRESHOLD),
        Variant(f"threshold-{lower_tau}", threshold=lower_tau),
        Variant("int8", int8=True),
        Variant("context-cache", context_cache=True),
        Variant("fast-cpu", fast=True),
    ]


@dataclass
class Run:
    """What one variant drafted: each section's tokens up to its end, its text, and timings."""

    tokens: list[list[int]]
    texts: list[str]
    passes: int
    step_seconds: list[float]
    int8: bool
    context_cache: bool

    @property
    def committed(self) -> int:
        return sum(map(len, self.tokens))


def token_diff(baseline: list[list[int]], other: list[list[int]]) -> tuple[int, int]:
    """(differing, compared) positions over every section up to its end, as `token_diff` in the
    module docstring defines them."""
    differing = compared = 0
    for a, b in zip(baseline, other, strict=True):
        compared += max(len(a), len(b))
        differing += sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
    return differing, compared


def compare(run: Run, baseline: Run) -> dict:
    """A variant's row of the report, against the baseline run."""
    differing, compared = token_diff(baseline.tokens, run.tokens)
    changed = sum(a != b for a, b in zip(baseline.texts, run.texts, strict=True))
    ms = 1000 * statistics.median(run.step_seconds)
    baseline_ms = 1000 * statistics.median(baseline.step_seconds)
    seconds = sum(run.step_seconds)
    return {
        "applies": {"int8": run.int8, "context_cache": run.context_cache},
        "token_diff": round(differing / compared, 4) if compared else 0.0,
        "tokens_differing": differing,
        "tokens_compared": compared,
        "committed_tokens": run.committed,
        "section_text_diff": round(changed / len(run.texts), 4),
        "sections_changed": changed,
        "forward_passes": run.passes,
        "passes_vs_exact": round(run.passes / baseline.passes, 3),
        "ms_per_step": round(ms, 2),
        "step_time_vs_exact": round(ms / baseline_ms, 3),
        "seconds": round(seconds, 3),
        "committed_tokens_per_s": round(run.committed / seconds, 1),
    }


@dataclass
class Bench:
    """Drafts the same sections with the same seed under every variant, on one library."""

    denoisers: Denoisers
    library: Library
    store: DraftStore  # the benchmark's own drafts, never the library's
    headings: list[str]
    tokens: int
    seed: int
    refresh_every: int | None = None  # None: the app's default
    warm: set[tuple[str, bool]] = field(default_factory=set)  # denoisers warmed up

    def settings(self, variant: Variant, family: Family, model: str) -> DraftSettings:
        return DraftSettings.from_recipe(
            family.recipe,
            fast=variant.fast,
            model=model,
            block_tokens=self.tokens,
            refresh_every=self.refresh_every,
            threshold=variant.threshold,
            int8=variant.int8,
            context_cache=variant.context_cache,
        )

    def drafter(self, settings: DraftSettings) -> Drafter:
        """A drafter on the denoiser `settings` ask for; its first use runs an untimed warm-up
        draft of `WARM_UP_STEPS` steps (lazy loading, allocator growth, first-call overheads)."""
        key = settings.model, settings.int8 and self.int8_applies(settings.model)
        drafter = Drafter(self.library, self.denoisers.get(*key), self.store)
        if key not in self.warm:
            self.warm.add(key)
            draft = drafter.start(INSTRUCTION, self.headings, settings, seed=self.seed)
            for _ in drafter.run(draft, stop_after=WARM_UP_STEPS):
                pass
        return drafter

    def int8_applies(self, model: str) -> bool:
        """Whether the loader quantises this model (masked LMs on a CPU): where it does not, the
        int8 variants run on the fp32 denoiser instead of loading a second copy of it."""
        denoiser = self.denoisers.get(model)
        return denoiser.family.architecture == "masked_lm" and denoiser.device.type == "cpu"

    def draft(self, settings: DraftSettings) -> Run:
        """Draft every section to its end with `settings`, timing each step."""
        drafter = self.drafter(settings)
        draft = drafter.start(INSTRUCTION, self.headings, settings, seed=self.seed)
        steps = drafter.run(draft)
        times = []
        while True:
            started = time.perf_counter()
            if next(steps, None) is None:
                break
            times.append(time.perf_counter() - started)
        if not draft.done:
            raise RuntimeError(f"the draft stopped at step {draft.step} with sections unfinished")
        return Run(
            tokens=[block.canvas.tokens[: block.canvas.end].tolist() for block in draft.blocks],
            texts=[drafter.text(draft, i) for i in range(len(draft.blocks))],
            passes=draft.step,
            step_seconds=times,
            int8=draft.settings.int8,
            context_cache=draft.settings.context_cache and drafter.context_cache is not None,
        )

    def model(self, model: str, lower_tau: float) -> dict:
        """Every variant on `model`, compared with its exact baseline."""
        family = self.denoisers.get(model).family
        runs: dict[str, Run] = {}
        asked: dict[str, dict] = {}
        for variant in variants(lower_tau):
            settings = self.settings(variant, family, model)
            log(f"[{model}] {variant.name}")
            runs[variant.name] = self.draft(settings)
            asked[variant.name] = {
                "threshold": settings.threshold,
                "int8": settings.int8,
                "context_cache": settings.context_cache,
            }
        baseline = runs[BASELINE]
        return {
            "family": family.name,
            "recipe": asdict(family.recipe),
            "steps_per_run": self.settings(Variant(BASELINE), family, model).steps,
            "variants": {
                name: {"settings": asked[name]} | compare(run, baseline)
                for name, run in runs.items()
            },
        }


def sample_library(folder: Path) -> Library:
    """The sample PDFs of sample_docs/ ingested into a new library in `folder`."""
    library = Library(Settings(library_dir=folder))
    for outcome in library.ingest_many(sorted(SAMPLE_DIR.glob("*.pdf"))):
        if outcome.status != "added":
            raise RuntimeError(f"could not ingest a sample document: {outcome}")
    return library


def run_bench(
    library: Library,
    models: list[str] | None = None,
    tiny: list[str] | None = None,
    sections: int = 4,
    tokens: int = 64,
    lower_tau: float = LOWER_TAU,
    seed: int = 0,
    refresh_every: int | None = None,
) -> dict:
    """The whole report: every variant on every model in `models`, else on the `tiny` models
    (default: all of `TINY_MODELS`), built into a temporary folder."""
    headings = [HEADINGS[i % len(HEADINGS)] for i in range(sections)]
    with tempfile.TemporaryDirectory(prefix="palimpsest-fidelity-") as scratch:
        root = Path(scratch)
        if models:
            named = {name: name for name in models}
        else:
            builders = {name: TINY_MODELS[name] for name in tiny or TINY_MODELS}
            named = {name: str(build(root / name)) for name, build in builders.items()}
        bench = Bench(
            Denoisers(root / "models"),
            library,
            DraftStore(root / "drafts.sqlite3"),
            headings,
            tokens,
            seed,
            refresh_every,
        )
        results = {name: bench.model(path, lower_tau) for name, path in named.items()}
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "draft": {
            "instruction": INSTRUCTION,
            "headings": headings,
            "sections": sections,
            "block_tokens": tokens,
            "seed": seed,
            "refresh_every": refresh_every,
            "library": str(library.settings.library_dir),
        },
        "baseline": BASELINE,
        "models": results,
    }


def table(report: dict) -> str:
    """The report as a Markdown table; "(not applied)" marks an option the model lacks."""
    lines = [
        "| model | variant | token diff | sections changed | passes | passes vs exact "
        "| ms / step | step time vs exact | tok/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, result in report["models"].items():
        for name, row in result["variants"].items():
            missing = [o for o in ("int8", "context_cache") if row["settings"][o]]
            missing = [o for o in missing if not row["applies"][o]]
            note = f" ({', '.join(missing)} not applied)" if missing else ""
            lines.append(
                f"| {model} | {name}{note} | {100 * row['token_diff']:.1f}% "
                f"| {row['sections_changed']}/{report['draft']['sections']} "
                f"| {row['forward_passes']} | {row['passes_vs_exact']:.2f}x "
                f"| {row['ms_per_step']:.1f} | {row['step_time_vs_exact']:.2f}x "
                f"| {row['committed_tokens_per_s']:.1f} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", nargs="+", help="checkpoints (folders or hub ids); default: the tiny models"
    )
    parser.add_argument(
        "--tiny",
        nargs="+",
        choices=list(TINY_MODELS),
        help="which tiny models to build when no --model is given (default: all)",
    )
    parser.add_argument("--library", type=Path, help="a library folder; default: sample_docs/")
    parser.add_argument("--sections", type=int, default=4, help="sections per draft")
    parser.add_argument("--tokens", type=int, default=64, help="canvas tokens per section")
    parser.add_argument("--lower-tau", type=float, default=LOWER_TAU, help="the second threshold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--refresh-every",
        type=int,
        help="re-run retrieval every R steps in every variant (default: the app's; 0: never)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    args = parser.parse_args(argv)
    if args.sections < 1 or args.tokens < 1:
        parser.error("--sections and --tokens must be at least 1")
    if not 0 < args.lower_tau < 1:
        parser.error("--lower-tau must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="palimpsest-fidelity-library-") as scratch:
        if args.library is None:
            log("ingesting sample_docs/ into a temporary library")
            library = sample_library(Path(scratch) / "library")
        else:
            library = Library(Settings(library_dir=args.library))
        report = run_bench(
            library,
            args.model,
            args.tiny,
            args.sections,
            args.tokens,
            args.lower_tau,
            args.seed,
            args.refresh_every,
        )
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
