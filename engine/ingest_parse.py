"""The part of an ingest that runs in worker processes: reading PDFs (OCR included) into pages.

This module is what a spawned worker imports, so it imports only the PDF readers: never torch,
the embedding model or Chroma (tests/test_ingest_pipeline.py checks it in a fresh interpreter).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

from engine.documents import IngestError, ParsedDocument, read_pdf

ORPHAN_CHECK_S = 1.0  # how often a worker looks whether its parent is still alive


@dataclass(frozen=True)
class ParseJob:
    path: Path
    filename: str  # as shown to the user (engine.library.display_filename)
    max_bytes: int
    max_pages: int


@dataclass(frozen=True)
class ParseResult:
    job: ParseJob
    document: ParsedDocument | None  # None when the file cannot be read
    error: str = ""  # the one-line reason when it cannot


def parse(job: ParseJob) -> ParseResult:
    """Read one PDF; a bad file is a result with its reason, never an exception."""
    try:
        document = read_pdf(
            job.path, max_bytes=job.max_bytes, max_pages=job.max_pages, filename=job.filename
        )
    except IngestError as error:
        return ParseResult(job, None, str(error))
    return ParseResult(job, document)


def start_worker(parent_pid: int) -> None:
    """Worker initializer. Ctrl+C reaches the whole process group, but only the parent decides
    what to do about it (cancel, then shut the pool down), so a worker ignores it. And a worker
    whose parent died (kill -9) exits: blocked on the task queue, it would never notice."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True).start()


def _exit_with(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)


def page_count(path: Path) -> int:
    """The number of pages PDFium finds in a file, without parsing them; 0 for a file it cannot
    open (locked, damaged, not a PDF), which the parse will then explain."""
    try:
        document = pdfium.PdfDocument(str(path))
    except Exception:  # PdfiumError, OSError: whatever it is, the parse reports it
        return 0
    try:
        return len(document)
    finally:
        document.close()
