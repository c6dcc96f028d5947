"""Shared fixtures: a real embedding model, real libraries on disk, the sample and corpus PDFs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from engine.config import Settings  # noqa: E402
from engine.embeddings import Embedder  # noqa: E402
from engine.library import Library  # noqa: E402

pytest_plugins = ["drafting_fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "sample_docs"
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
SAMPLE_PDFS = sorted(SAMPLE_DIR.glob("*.pdf"))

requires_corpus = pytest.mark.skipif(not CORPUS_DIR.is_dir(), reason="../shared/corpus is absent")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(Settings().embedding_model)


@pytest.fixture
def library(tmp_path: Path, embedder: Embedder) -> Library:
    return Library(Settings(library_dir=tmp_path / "library"), embedder=embedder)


@pytest.fixture(scope="session")
def sample_library(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Library:
    """One library holding every sample PDF, shared by read-only tests."""
    folder = tmp_path_factory.mktemp("sample-library")
    library = Library(Settings(library_dir=folder), embedder=embedder)
    outcomes = list(library.ingest_many(SAMPLE_PDFS))
    assert [o.status for o in outcomes] == ["added"] * len(SAMPLE_PDFS), outcomes
    return library


def cli_env(library_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `palimpsest` subprocess: offline, quiet, on a given library."""
    env = dict(os.environ, PALIMPSEST_LIBRARY=str(library_dir), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env
