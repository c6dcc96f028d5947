"""Fixtures for drafting tests: a tiny real model on disk and a workspace over the samples."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import SAMPLE_PDFS

from engine.config import Settings
from engine.draft import Draft, DraftSettings
from engine.draft_store import draft_from_json, draft_to_json
from engine.drafting import Drafter
from engine.testmodels import build_tiny_bert
from engine.workspace import Workspace

HEADINGS = ["Termination for convenience", "Termination for cause", "Effect of termination"]
INSTRUCTION = "Draft the termination clauses of a services agreement, following the precedents."


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", seed=0)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, embedder) -> Workspace:
    folder = tmp_path_factory.mktemp("draft-library")
    workspace = Workspace(Settings(library_dir=folder), embedder=embedder)
    for path in SAMPLE_PDFS:
        assert workspace.library.ingest(path).status == "added"
    return workspace


def draft_settings(model: Path, **overrides) -> DraftSettings:
    values = {
        "model": str(model),
        "steps": 6,
        "block_tokens": 24,
        "passages": 2,
        "refresh_every": 2,
    }
    values.update(overrides)
    return DraftSettings(**values)


@pytest.fixture(scope="session")
def drafter(workspace: Workspace, tiny_model: Path) -> Drafter:
    return workspace.drafter(str(tiny_model))


@pytest.fixture(scope="session")
def finished(drafter: Drafter, tiny_model: Path) -> Draft:
    """One finished three-block draft, drafted once for the whole run."""
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), seed=5)
    list(drafter.run(draft))
    return draft


@pytest.fixture
def draft(drafter: Drafter, finished: Draft) -> Draft:
    """A saved copy of the finished draft under a new id, for a test to change (drafting it
    once per test would cost seconds)."""
    copy = draft_from_json(draft_to_json(finished, drafter.decode(finished)))
    copy.draft_id = uuid.uuid4().hex[:12]
    drafter.save(copy)
    return copy
