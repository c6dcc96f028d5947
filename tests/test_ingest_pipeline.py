"""Ingest at scale (issue 14, part 3): many files through `engine.ingest_pipeline` with worker
processes, embedding batched across documents, progress figures, and cancel.

Real PDFs (the samples, and small generated ones), the real embedding model and a real Chroma
store on disk; each check compares against what one-by-one `Library.ingest` stores.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, SAMPLE_PDFS, cli_env
from helpers import pdf_bytes, write

from engine.config import Settings
from engine.ingest_batches import EMBED_BATCH, PreparedDocument, store_documents
from engine.ingest_pipeline import ingest_files
from engine.ingest_progress import IngestProgress, duration
from engine.library import Library

pytestmark = pytest.mark.skipif(not SAMPLE_PDFS, reason="sample_docs/ is absent")

WORDS = [
    *("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbour"),
    *("indigo", "jasper", "kelp", "lagoon", "meadow", "nickel", "onyx", "prairie"),
]


def topic_pdf(folder: Path, number: int, pages: int = 40) -> Path:
    """A PDF of `pages` one-sentence pages (one chunk each) about a word no other one uses."""
    word = WORDS[number]
    text = [
        f"Page {p} of the {word} file records how {word} samples {p} were kept."
        for p in range(pages)
    ]
    return write(folder / f"{word}.pdf", pdf_bytes(text))


def counting(monkeypatch, embedder) -> list[int]:
    """Make the real embedder count its calls (the number of texts in each)."""
    calls: list[int] = []
    real = embedder.embed

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "embed", embed)
    return calls


def contents(library: Library) -> dict:
    """What every store of a library holds, comparable across libraries."""
    records = {r.doc_id: (r.filename, r.pages, r.chunks, r.status) for r in library.documents()}
    chunks = library.catalog.ready_chunks()
    vectors = library.vectors.vectors_of([c.chunk_id for c in chunks])
    with library.catalog.connect() as db:
        pending = db.execute("SELECT count(*) FROM documents WHERE status != 'ready'").fetchone()
    return {
        "records": records,
        "chunks": sorted(
            (c.chunk_id, c.page_index, c.char_start, c.char_end, c.text) for c in chunks
        ),
        "vectors": {chunk_id: vectors[chunk_id] for chunk_id in sorted(vectors)},
        "vectors_total": library.vectors.count(),
        "files": sorted(p.name for p in library.files_dir.iterdir()),
        "not_ready": pending[0],
    }


def assert_consistent(library: Library) -> None:
    """Every store holds exactly the ready documents, each whole."""
    state = contents(library)
    assert state["not_ready"] == 0
    assert state["files"] == sorted(f"{doc_id}.pdf" for doc_id in state["records"])
    assert state["vectors_total"] == len(state["chunks"]) == len(state["vectors"])
    for doc_id, (_, _, chunks, _) in state["records"].items():
        assert library.vectors.count(doc_id) == chunks


def test_the_parse_worker_imports_no_model_code():
    probe = (
        "import sys, engine.ingest_parse; "
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'chromadb')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_many_files_with_workers_store_what_one_by_one_ingest_stores(
    tmp_path, embedder, monkeypatch
):
    broken = write(tmp_path / "broken.pdf", b"definitely not a pdf")
    files = [*SAMPLE_PDFS[:2], broken, *SAMPLE_PDFS[2:], SAMPLE_PDFS[0]]
    one_by_one = Library(Settings(library_dir=tmp_path / "one-by-one"), embedder=embedder)
    expected = [one_by_one.ingest(path) for path in files]
    one_by_one.refresh_index()

    calls = counting(monkeypatch, embedder)
    seen: list[IngestProgress] = []
    piped = Library(Settings(library_dir=tmp_path / "pipeline"), embedder=embedder)
    outcomes = list(ingest_files(piped, files, workers=2, progress=seen.append))

    assert [(o.filename, o.status) for o in outcomes] == [(o.filename, o.status) for o in expected]
    assert (
        outcomes[2].line()
        == "failed: broken.pdf: not a PDF (the file does not start with a PDF header)"
    )
    assert outcomes[-1].status == "duplicate" and outcomes[-1].doc_id == outcomes[0].doc_id
    added = [o for o in outcomes if o.status == "added"]
    assert [(o.doc_id, o.pages, o.chunks) for o in added] == [
        (o.doc_id, o.pages, o.chunks) for o in expected if o.status == "added"
    ]

    # Embedding batched across documents: full batches, and fewer calls than documents.
    total = sum(o.chunks for o in added)
    assert calls == [min(EMBED_BATCH, total - start) for start in range(0, total, EMBED_BATCH)]
    assert len(calls) == math.ceil(total / EMBED_BATCH) < len(added)

    mine, theirs = contents(piped), contents(one_by_one)
    assert {k: v for k, v in mine.items() if k != "vectors"} == {
        k: v for k, v in theirs.items() if k != "vectors"
    }
    for chunk_id, vector in mine["vectors"].items():  # batch-mates change only float rounding
        assert np.allclose(vector, theirs["vectors"][chunk_id], atol=1e-5)
    assert_consistent(piped)
    for query in ("trade secrets stay confidential", "subject access request"):
        assert [h.chunk_id for h in piped.search(query, k=5, mode="lexical")] == [
            h.chunk_id for h in one_by_one.search(query, k=5, mode="lexical")
        ]

    # Progress: monotone, ending at the totals it announced from the start.
    pages_total = sum(o.pages for o in expected if o.status == "added")
    pages_total += outcomes[-1].pages  # the duplicate's pages are counted too
    assert {(p.files_total, p.pages_total) for p in seen} == {(len(files), pages_total)}
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    assert [p.pages_done for p in seen] == sorted(p.pages_done for p in seen)
    assert [p.elapsed_s for p in seen] == sorted(p.elapsed_s for p in seen)
    last = seen[-1]
    assert (last.files_done, last.pages_done) == (len(files), pages_total)
    assert last.seconds_left == 0 and last.pages_per_s > 0 and last.fraction == 1.0
    assert not multiprocessing.active_children()  # the pool is gone


def test_cancel_mid_way_undoes_the_document_being_written_and_keeps_the_finished(
    tmp_path, embedder
):
    files = [topic_pdf(tmp_path, n) for n in range(5)]  # 40 chunks each: batches span documents
    library = Library(Settings(library_dir=tmp_path / "library"), embedder=embedder)
    cancel = threading.Event()

    def cancel_inside_the_fourth(progress: IngestProgress) -> None:
        if progress.current == files[3].name:  # partly written: cancel before the rest
            cancel.set()

    outcomes = list(
        ingest_files(library, files, workers=2, progress=cancel_inside_the_fourth, cancel=cancel)
    )
    assert [o.status for o in outcomes] == ["added"] * 3 + ["cancelled"] * 2
    assert outcomes[3].line() == f"cancelled: {files[3].name}: not added: the ingest was cancelled"
    assert not multiprocessing.active_children()

    assert_consistent(library)
    assert sorted(r.filename for r in library.documents()) == sorted(f.name for f in files[:3])
    for number, path in enumerate(files):
        found = {h.filename for h in library.search(WORDS[number], k=5, mode="lexical")}
        assert found == ({path.name} if number < 3 else set())

    # Nothing of the cancelled files lingers: they go in whole when given again.
    again = list(ingest_files(library, files, workers=0))
    assert [o.status for o in again] == ["duplicate"] * 3 + ["added"] * 2
    assert_consistent(library)


class MemoryWriter:
    """The stores as a dict, to watch what `store_documents` does when embedding fails."""

    def __init__(self):
        self.stored: dict[str, int] = {}
        self.abandoned: list[tuple[str, bool]] = []

    def begin(self, doc):
        self.stored[doc.doc_id] = 0

    def write(self, doc, chunks, vectors):
        self.stored[doc.doc_id] += len(chunks)

    def finish(self, doc):
        from engine.ingest_outcome import IngestOutcome

        return IngestOutcome(doc.name, "added", "", doc.doc_id, 0, len(doc.chunks))

    def abandon(self, doc, begun):
        self.abandoned.append((doc.name, begun))
        self.stored.pop(doc.doc_id, None)


def test_a_failed_batch_fails_the_documents_in_it_and_no_others(tmp_path):
    from types import SimpleNamespace

    from engine.chunking import Chunk

    def doc(name: str, chunks: int) -> PreparedDocument:
        parsed = SimpleNamespace(doc_id=name * 8)
        made = [Chunk(f"{name}-{i}", name * 8, 0, "1", i, 0, 1, "x") for i in range(chunks)]
        return PreparedDocument(parsed, tmp_path, name, made)

    batches = []

    def embed(texts):
        batches.append(len(texts))
        if len(batches) == 2:
            raise RuntimeError("out of memory\nand more")
        return np.zeros((len(texts), 3), dtype=np.float32)

    writer = MemoryWriter()
    outcomes = list(
        store_documents(writer, [doc("a", 3), doc("b", 4), doc("c", 2)], embed, batch_size=4)
    )
    assert batches == [4, 4]  # c's last chunk is not embedded: c has failed already
    assert [(o.filename, o.status) for o in outcomes] == [
        ("a", "added"),
        ("b", "failed"),
        ("c", "failed"),
    ]
    assert outcomes[1].message == "could not store the document (out of memory)"
    assert writer.abandoned == [("b", True), ("c", False)]
    assert writer.stored == {"aaaaaaaa": 3}


def test_progress_line_reads_well():
    figures = IngestProgress(3, 40, 120, 1500, 30.0, "nda.pdf")
    assert figures.line() == "3/40 files · 120/1,500 pages · 4.0 pages/s · 5 min 45 s left"
    assert IngestProgress(0, 2, 0, 10, 1.0).seconds_left is None
    assert [duration(s) for s in (42, 336, 7500)] == ["42 s", "5 min 36 s", "2 h 05 min"]


def ready_count(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=1) as db:
            return db.execute("SELECT count(*) FROM documents WHERE status = 'ready'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_in_the_cli_cancels_cleanly(tmp_path, embedder):
    files = [topic_pdf(tmp_path, n, pages=60) for n in range(12)]
    library_dir = tmp_path / "library"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "ingest", "--workers", "2", *map(str, files)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl+C reaches
    )
    deadline = time.monotonic() + 240
    while ready_count(library_dir / "library.sqlite3") == 0 and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == len(files)
    statuses = [line.split(":")[0] for line in lines]
    assert "added" in statuses and "cancelled" in statuses, stdout
    assert statuses == sorted(statuses)  # the added ones first, then the rest cancelled
    assert "cancelling:" in stderr and "files added before the cancel stay" in stderr
    assert "pages/s" in stderr and "Traceback" not in stderr

    library = Library(Settings(library_dir=library_dir), embedder=embedder)
    assert_consistent(library)
    kept = {record.filename for record in library.documents()}
    assert kept == {line.split(": ")[1] for line in lines if line.startswith("added")}
    first = files[0]
    assert {h.filename for h in library.search(WORDS[0], k=3, mode="lexical")} == {first.name}


def children(pid: int) -> list[int]:
    listed = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return [int(line) for line in listed.stdout.split()]


def gone(pid: int) -> bool:
    """Exited (a zombie that nobody reaps, as in a container without an init, counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_exit_when_the_ingest_is_killed(tmp_path):
    files = [topic_pdf(tmp_path, n, pages=60) for n in range(8)]
    library_dir = tmp_path / "library"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "ingest", "--workers", "2", *map(str, files)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while len(workers := children(process.pid)) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "the ingest ended before its workers were seen"
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(gone(pid) for pid in workers), workers
