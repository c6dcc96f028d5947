"""bench/fidelity.py on the tiny ModernBERT: every variant drafts, the baseline matches itself, and
the counts add up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine.library import Library

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fidelity.py"
SECTIONS, TOKENS = 2, 16


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fidelity", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


@pytest.fixture(scope="module")
def report(bench: ModuleType, sample_library: Library) -> dict:
    return bench.run_bench(
        sample_library, tiny=["tiny-modernbert"], sections=SECTIONS, tokens=TOKENS, refresh_every=0
    )


def test_token_diff_counts_positions_only_one_side_has(bench: ModuleType) -> None:
    assert bench.token_diff([[1, 2, 3]], [[1, 2, 3]]) == (0, 3)
    assert bench.token_diff([[1, 2, 3]], [[1, 9]]) == (2, 3)  # one changed, one missing
    assert bench.token_diff([[1], []], [[1, 2, 3], []]) == (2, 3)  # a later end
    assert bench.token_diff([[]], [[]]) == (0, 0)


def test_every_variant_is_reported(bench: ModuleType, report: dict) -> None:
    names = [variant.name for variant in bench.variants(bench.LOWER_TAU)]
    assert names[0] == bench.BASELINE == report["baseline"]
    assert list(report["models"]) == ["tiny-modernbert"]
    result = report["models"]["tiny-modernbert"]
    assert result["family"].startswith("BERT-chat")
    assert list(result["variants"]) == names
    table = bench.table(report)
    assert all(f"| {name} " in table for name in names)


def test_baseline_differs_from_itself_by_nothing(report: dict) -> None:
    exact = report["models"]["tiny-modernbert"]["variants"]["exact"]
    assert exact["token_diff"] == 0 and exact["tokens_differing"] == 0
    assert exact["section_text_diff"] == 0 and exact["sections_changed"] == 0
    assert exact["passes_vs_exact"] == 1 and exact["step_time_vs_exact"] == 1
    assert exact["settings"] == {"threshold": None, "int8": False, "context_cache": False}


def test_counts_are_consistent(bench: ModuleType, report: dict) -> None:
    result = report["models"]["tiny-modernbert"]
    exact = result["variants"]["exact"]
    for name, row in result["variants"].items():
        assert 0 < row["committed_tokens"] <= SECTIONS * TOKENS, name
        assert max(row["committed_tokens"], exact["committed_tokens"]) <= row["tokens_compared"]
        assert 0 <= row["tokens_differing"] <= row["tokens_compared"]
        assert row["token_diff"] == pytest.approx(
            row["tokens_differing"] / row["tokens_compared"], abs=1e-4
        )
        assert row["section_text_diff"] == pytest.approx(row["sections_changed"] / SECTIONS)
        assert 1 <= row["forward_passes"] <= result["steps_per_run"]
        assert row["passes_vs_exact"] == pytest.approx(
            row["forward_passes"] / exact["forward_passes"], abs=1e-3
        )
        assert row["ms_per_step"] > 0 and row["seconds"] > 0 and row["step_time_vs_exact"] > 0


def test_options_ran_as_asked(report: dict) -> None:
    variants = report["models"]["tiny-modernbert"]["variants"]
    assert variants["threshold-0.9"]["settings"]["threshold"] == 0.9
    assert variants["int8"]["applies"] == {"int8": True, "context_cache": False}
    assert variants["context-cache"]["applies"] == {"int8": False, "context_cache": True}
    fast = variants["fast-cpu"]
    assert fast["settings"] == {"threshold": 0.9, "int8": True, "context_cache": False}
    assert fast["applies"]["int8"]
