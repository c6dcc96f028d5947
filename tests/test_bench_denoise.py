"""bench/denoise.py on the tiny model: both variants finish the draft, with sane measurements."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from engine.testmodels import build_tiny_modernbert

BENCH = Path(__file__).resolve().parent.parent / "bench" / "denoise.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_denoise", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_bench()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_modernbert(tmp_path_factory.mktemp("bench-tiny"))


@pytest.mark.parametrize("variant", ["naive", "exact", "ours", "int8"])
def test_variant_commits_every_token(bench, tiny_folder: Path, variant: str) -> None:
    result = bench.run_variant(tiny_folder, variant, steps=2)
    assert result["masks_left"] == 0
    assert result["committed_tokens"] == bench.SECTIONS * bench.BLOCK_TOKENS
    assert result["forward_passes"] == 2
    assert result["ms_per_step"] > 0 and result["seconds_per_draft"] > 0
    assert result["committed_tokens_per_s"] > 0
    assert result["evidence_tokens_per_section"] == pytest.approx(bench.EVIDENCE_TOKENS, abs=8)
    if variant != "ours":  # the cached steps run the canvases only
        assert result["positions_per_step"] > bench.SECTIONS * bench.BLOCK_TOKENS
    if variant == "naive":  # LM head over every position of the one sequence
        assert result["lm_head_rows_per_step"] == result["positions_per_step"]
    else:  # LM head at the masked positions only: 512 then 256 rows
        assert result["lm_head_rows_per_step"] == 384
    floored = bench.add_floor(result, peak_gflops=100.0)
    assert floored["floor_ms"] > 0 and floored["over_floor"] > 0


def test_cached_variant_reports_agreement_with_exact(bench, tiny_folder: Path) -> None:
    result = bench.run_variant(tiny_folder, "ours", steps=bench.ROUND)
    assert 0.0 <= result["cache_top1_agreement"] <= 1.0
    assert result["cache_kl"] >= 0.0
