"""kill -9 in the middle of an ingest leaves a library that reopens consistent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import CORPUS_DIR, REPO_ROOT, SAMPLE_DIR, cli_env

from engine.config import Settings
from engine.library import Library


def pending_rows(database) -> int:
    try:
        with sqlite3.connect(database, timeout=1) as db:
            return db.execute("SELECT count(*) FROM documents WHERE status = 'pending'").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0


def test_library_is_consistent_after_kill_mid_ingest(tmp_path, embedder):
    library_dir = tmp_path / "library"
    sources = sorted(CORPUS_DIR.glob("*.pdf")) if CORPUS_DIR.is_dir() else []
    sources = sources or sorted(SAMPLE_DIR.glob("*.pdf"))
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "ingest", *map(str, sources)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    database = library_dir / "library.sqlite3"
    deadline = time.monotonic() + 180
    # Wait until a document is half-written (pending in SQLite, vectors streaming into Chroma).
    while pending_rows(database) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert process.poll() is None, "ingest finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert pending_rows(database) == 1, "the kill did not land mid-document"

    reopened = Library(Settings(library_dir=library_dir), embedder=embedder)
    assert reopened.catalog.documents(("pending", "deleting")) == []
    ready = reopened.documents()
    for record in ready:
        assert reopened.vectors.count(record.doc_id) == record.chunks
        assert reopened.pdf_path(record.doc_id).exists()
    assert reopened.vectors.count() == sum(r.chunks for r in ready)
    assert sorted(p.name for p in reopened.files_dir.iterdir()) == sorted(
        f"{r.doc_id}.pdf" for r in ready
    )
    with reopened.catalog.connect() as db:
        assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == sum(
            r.chunks for r in ready
        )

    finished = subprocess.run(
        [sys.executable, "-m", "engine", "ingest", *map(str, sources)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr
    final = Library(Settings(library_dir=library_dir), embedder=embedder)
    assert len(final.documents()) == len(sources)
    assert final.vectors.count() == sum(r.chunks for r in final.documents())
