"""bench/denoise.py on the tiny model: every variant steps the draft with the recipe, with sane
measurements."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine.testmodels import build_tiny_modernbert

BENCH = Path(__file__).resolve().parent.parent / "bench" / "denoise.py"
STEPS = 2


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_denoise", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_modernbert(tmp_path_factory.mktemp("bench-tiny"))


@pytest.mark.parametrize("variant", ["naive", "exact", "threshold", "cache", "fast-dllm", "int8"])
def test_variant_commits_one_token_per_sub_block_per_step(
    bench: ModuleType, tiny_folder: Path, variant: str
) -> None:
    result = bench.run_variant(tiny_folder, variant, steps=STEPS)
    assert result["forward_passes"] == STEPS
    # the recipe commits one token per section's sub-block per step; random weights never reach
    # the threshold, so it commits no more
    assert result["committed_tokens"] == bench.SECTIONS * STEPS
    assert result["tokens_per_step"] == bench.SECTIONS
    assert result["ms_per_step"] > 0 and result["seconds"] > 0
    assert result["committed_tokens_per_s"] > 0
    assert result["evidence_tokens_per_section"] == pytest.approx(bench.EVIDENCE_TOKENS, abs=8)
    assert result["prompt_tokens_per_section"] > 0
    threshold, cache, int8 = bench.ENGINE_OPTIONS.get(variant, (None, False, False))
    assert (result["threshold"], result["context_cache"], result["int8"]) == (
        threshold,
        cache,
        int8,
    )


def test_settings_follow_the_published_recipe(bench: ModuleType, tiny_folder: Path) -> None:
    settings = bench.settings_for(tiny_folder, "exact")
    assert settings.sub_block == 32 and settings.steps == bench.BLOCK_TOKENS
    assert settings.min_tokens == bench.BLOCK_TOKENS  # sections keep their full length
    assert bench.settings_for(tiny_folder, "fast-dllm").threshold == 0.9


def test_published_figures_are_labelled(bench: ModuleType) -> None:
    assert "published" in bench.PUBLISHED["label"] and "A100" in bench.PUBLISHED["hardware"]
    published = bench.PUBLISHED["tokens_per_s"]
    assert published["256"] == {"llada": 6.7, "fast_dllm": 54.4, "speedup": 8.1}
    assert published["512"] == {"llada": 3.2, "fast_dllm": 35.3, "speedup": 11.0}
