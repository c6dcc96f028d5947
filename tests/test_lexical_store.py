"""The lexical index is saved next to the catalog: a new process opens it instead of rebuilding
it, a change rebuilds it once, and what it holds always matches the ready chunks in SQLite, also
after a kill -9 mid-ingest."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SAMPLE_DIR, cli_env
from helpers import pdf_bytes, write

from engine.catalog import CATALOG_FILE, Catalog
from engine.config import Settings
from engine.lexical import LexicalIndex
from engine.library import Library

QUERIES = ["invoices payable within thirty days", "trade secrets stay confidential", "notice"]


def results(library: Library, doc_ids: list[str] | None = None) -> list[list[tuple[str, float]]]:
    """The hybrid and the lexical hits of every query, as (chunk_id, score)."""
    return [
        [(hit.chunk_id, hit.score) for hit in library.search(query, 8, doc_ids, mode)]
        for query in QUERIES
        for mode in ("hybrid", "lexical")
    ]


@pytest.fixture
def count_builds(monkeypatch) -> list[int]:
    """How many lexical indexes are built from texts from now on (one entry per build)."""
    builds: list[int] = []
    build = LexicalIndex.build.__func__

    def counted(cls, chunk_ids, texts):
        builds.append(len(chunk_ids))
        return build(cls, chunk_ids, texts)

    monkeypatch.setattr(LexicalIndex, "build", classmethod(counted))
    return builds


def reopen(library: Library, embedder) -> Library:
    return Library(Settings(library_dir=library.root), embedder=embedder)


def saved_generations(library: Library) -> list[str]:
    return sorted(entry.name for entry in library.lexical.folder.iterdir())


def test_a_new_library_opens_the_saved_index_and_finds_the_same(library, embedder, count_builds):
    nda = library.ingest(SAMPLE_DIR / "nda.pdf")
    library.ingest(SAMPLE_DIR / "services-agreement.pdf")
    before, only_nda = results(library), results(library, doc_ids=[nda.doc_id])
    assert len(count_builds) == 1  # built once, at the first search after the ingests

    reopened = reopen(library, embedder)
    assert results(reopened) == before
    assert results(reopened, doc_ids=[nda.doc_id]) == only_nda
    assert len(count_builds) == 1, "the new library rebuilt the index instead of opening it"
    assert saved_generations(library) == [str(library.catalog.generation())]


def test_a_change_rebuilds_once_and_the_next_process_opens_that(library, embedder, count_builds):
    library.ingest(SAMPLE_DIR / "nda.pdf")
    library.refresh_index()
    gone = library.ingest(SAMPLE_DIR / "services-agreement.pdf")
    library.delete(gone.doc_id)
    library.ingest(SAMPLE_DIR / "research-note.pdf")
    expected = results(library)
    assert len(count_builds) == 2  # the ingest, delete and ingest are one rebuild, at search

    assert results(reopen(library, embedder)) == expected
    assert len(count_builds) == 2
    assert saved_generations(library) == [str(library.catalog.generation())]  # old one swept


@pytest.mark.parametrize(
    "damage", ["manifest", "scores", "foreign", "other documents", "stale temporary"]
)
def test_a_damaged_or_foreign_saved_index_is_rebuilt(
    library, embedder, count_builds, tmp_path, damage
):
    library.ingest(SAMPLE_DIR / "nda.pdf")
    expected = results(library)
    saved = library.lexical.folder / str(library.catalog.generation())
    if damage == "manifest":
        (saved / "manifest.json").write_text("{")
    elif damage == "scores":
        (saved / "data.csc.index.npy").write_bytes(b"\x93NUMPY truncated")
    elif damage in ("foreign", "other documents"):  # same generation, another library or set
        manifest = json.loads((saved / "manifest.json").read_text())
        key = "library" if damage == "foreign" else "fingerprint"
        (saved / "manifest.json").write_text(json.dumps({**manifest, key: "another"}))
    else:  # a dead process's half-written copy is removed at the next save
        shutil.copytree(saved, library.lexical.folder / f".{2**22 + 7}.half")
        shutil.rmtree(saved)
    assert results(reopen(library, embedder)) == expected
    assert len(count_builds) == 2
    assert saved_generations(library) == [saved.name]
    assert results(reopen(library, embedder)) == expected
    assert len(count_builds) == 2, "the rebuilt index did not replace the damaged one"


def long_pdf(path: Path, pages: int = 40) -> Path:
    """A PDF of varied prose, long enough that embedding it takes a few seconds, with one word
    ("quokka") that no sample document contains."""
    rng = random.Random(0)
    words = ["lease", "tenant", "quokka", "premises", "rent", "repair", "notice", "landlord"]
    words += ["clause", "term", "assignment", "insurance", "access", "deposit", "schedule"]
    text = [
        "\n".join(" ".join(rng.choices(words, k=12)) + "." for _ in range(45)) for _ in range(pages)
    ]
    return write(path, pdf_bytes(text))


def ingest_process(library_dir: Path, pdf: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "ingest", str(pdf)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_mid_ingest_leaves_the_saved_index_consistent(tmp_path, embedder, count_builds):
    library_dir = tmp_path / "library"
    assert ingest_process(library_dir, SAMPLE_DIR / "nda.pdf").wait(timeout=300) == 0
    catalog = Catalog(library_dir / CATALOG_FILE)
    saved_at = catalog.generation()
    assert (library_dir / "lexical" / str(saved_at) / "manifest.json").exists()  # saved by ingest

    process = ingest_process(library_dir, long_pdf(tmp_path / "lease.pdf"))
    deadline = time.monotonic() + 120
    while not catalog.documents(("pending",)) and time.monotonic() < deadline:
        assert process.poll() is None, "the ingest ended before it could be interrupted"
        time.sleep(0.02)
    time.sleep(0.3)
    assert process.poll() is None and catalog.documents(("pending",)), "no kill mid-document"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    reopened = Library(Settings(library_dir=library_dir), embedder=embedder)
    assert reopened.catalog.documents(("pending", "deleting")) == []
    assert reopened.search("quokka lease", k=5, mode="lexical") == []
    assert reopened.search("confidential information", k=1)[0].filename == "nda.pdf"
    assert count_builds == [], "recovery outdated the saved index"
    index = reopened.lexical.open()
    assert index.generation == saved_at == reopened.catalog.generation()
    assert index.lexical.chunk_ids == [c.chunk_id for c in reopened.catalog.ready_chunks()]
