"""Ingest many PDFs at the embedding model's pace: parse ahead in worker processes, embed in
full batches across documents, store document by document.

    for outcome in ingest_files(library, paths, workers=2, progress=show, cancel=event):
        print(outcome.line())

Files are parsed (text layer, layout, OCR: `engine.ingest_parse`) by a pool of spawned worker
processes a few files ahead of the one being embedded, and their results are taken in the order
the files were given, so outcomes come out in that order whatever finishes first. With `workers`
0 or 1 every file is parsed here, when its turn comes. Chunking needs the embedding model's
tokenizer and stays in this process; it is cheap next to embedding (about 1%).

Everything after the parse is `Library.prepare` and `engine.ingest_batches.store_documents`, the
same code a single `Library.ingest` runs, so the stores are written in the same crash-safe order.
Cancelling (`cancel.set()`, from another thread or a signal handler) stops at the next batch: the
document being written is undone, finished ones stay, and the files not finished are reported as
cancelled; the worker pool is shut down however the run ends.

Workers are spawned, so, as with any spawned process, a script that ingests with `workers` > 1
must guard its entry point with `if __name__ == "__main__":`. Should a worker die anyway (that, a
crash in a PDF library, the machine's memory), the files from there on are parsed here instead.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from engine.ingest_batches import PreparedDocument, store_documents
from engine.ingest_outcome import IngestOutcome
from engine.ingest_parse import ParseJob, ParseResult, page_count, parse, start_worker
from engine.ingest_progress import IngestProgress, ProgressMeter
from engine.library import Library, display_filename

AHEAD_PER_WORKER = 2  # files parsed ahead per worker: keeps workers busy, bounds memory
POLL_S = 0.2  # how often a wait for a parse looks at the cancel event
STOP_S = 1.0  # how long a closing pool's idle workers get to exit by themselves


def default_workers() -> int:
    """PALIMPSEST_INGEST_WORKERS, else one per core, at most 4. Even on 2 cores two workers beat
    parsing here: a worker parses while this process embeds (README, "Performance")."""
    configured = os.environ.get("PALIMPSEST_INGEST_WORKERS", "").strip()
    if configured:
        return max(int(configured), 0)
    return min(os.cpu_count() or 1, 4)


class _Parses:
    """Parse results in the order of the jobs: from a pool of spawned processes, or made here
    one by one. Iteration ends early once `cancel` is set."""

    def __init__(self, jobs: list[ParseJob], workers: int, cancel: threading.Event):
        self.jobs = jobs
        self.cancel = cancel
        self.pool = None
        if workers > 1 and len(jobs) > 1:
            # Spawned, not forked: a worker starts bare and imports only engine.ingest_parse,
            # never the torch and model threads this process may hold.
            self.pool = ProcessPoolExecutor(
                workers,
                multiprocessing.get_context("spawn"),
                initializer=start_worker,
                initargs=(os.getpid(),),
            )
            self.ahead = workers * AHEAD_PER_WORKER

    def __iter__(self) -> Iterator[ParseResult]:
        if self.pool is None:
            yield from self._here(self.jobs)
            return
        submitted: list[Future | None] = []
        for index in range(len(self.jobs)):
            while len(submitted) < min(index + self.ahead, len(self.jobs)):
                submitted.append(self.pool.submit(parse, self.jobs[len(submitted)]))
            future = submitted[index]
            while not wait([future], timeout=POLL_S).done:
                if self.cancel.is_set():
                    return
            if self.cancel.is_set():
                return
            submitted[index] = None  # the result is taken: let it be freed
            try:
                result = future.result()
            except BrokenProcessPool:  # a worker died (see the module's docstring): go on here
                self.close()
                yield from self._here(self.jobs[index:])
                return
            yield result

    def _here(self, jobs: list[ParseJob]) -> Iterator[ParseResult]:
        for job in jobs:
            if self.cancel.is_set():
                return
            yield parse(job)

    def close(self) -> None:
        """Stop the workers: queued files are dropped, and one still being parsed after
        `STOP_S` is not waited for (an OCR'd scan can take minutes)."""
        if self.pool is None:
            return
        # ProcessPoolExecutor has no public way to stop a running task before Python 3.14
        # (terminate_workers), and forgets its processes on shutdown: take them first.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = None
        deadline = time.monotonic() + STOP_S
        for process in processes:
            process.join(timeout=max(deadline - time.monotonic(), 0))
            if process.is_alive():
                process.terminate()
                process.join()


class _InOrder:
    """Outcomes settled in any order, handed out in the order of the files."""

    def __init__(self, count: int):
        self.outcomes: list[IngestOutcome | None] = [None] * count
        self.given = 0

    def settle(self, index: int, outcome: IngestOutcome) -> None:
        self.outcomes[index] = outcome

    def ready(self) -> Iterator[IngestOutcome]:
        while self.given < len(self.outcomes) and self.outcomes[self.given] is not None:
            self.given += 1
            yield self.outcomes[self.given - 1]

    def unsettled(self) -> list[int]:
        return [index for index, outcome in enumerate(self.outcomes) if outcome is None]


def ingest_files(
    library: Library,
    paths: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[IngestOutcome]:
    """Add each file (shown as `names`, default the file names); yield one outcome per file, in
    order. Ends by refreshing the search index when anything was added, cancelled or not."""
    paths = [Path(path) for path in paths]
    shown = [display_filename(name) for name in (names or [path.name for path in paths])]
    cancel = cancel or threading.Event()
    meter = ProgressMeter([page_count(path) for path in paths], progress or (lambda p: None))
    order = _InOrder(len(paths))
    tags: dict[str, int] = {}  # doc_id -> the file it is being added from, in this run
    first_of: dict[str, PreparedDocument] = {}
    max_bytes = int(library.settings.max_file_mb * 2**20)
    limit = library.settings.max_pages
    jobs = [ParseJob(p, n, max_bytes, limit) for p, n in zip(paths, shown, strict=True)]
    parses = _Parses(jobs, default_workers() if workers is None else workers, cancel)

    def settle(index: int, outcome: IngestOutcome) -> None:
        order.settle(index, outcome)
        if outcome.status == "cancelled":
            meter.dropped(index)
        else:
            meter.finished(index)

    def prepared() -> Iterator[PreparedDocument]:
        for index, result in enumerate(parses):
            document = result.document
            if document is None:
                settle(index, IngestOutcome(shown[index], "failed", result.error))
                continue
            first = first_of.get(document.doc_id)
            if first is not None:  # the same bytes twice in one run
                message = f"same file as {first.name}, given earlier"
                pages, chunks = len(document.pages), len(first.chunks)
                outcome = IngestOutcome(
                    shown[index], "duplicate", message, first.doc_id, pages, chunks
                )
                settle(index, outcome)
                continue
            admitted = library.prepare(document, paths[index], shown[index], index)
            if isinstance(admitted, IngestOutcome):
                settle(index, admitted)
                continue
            tags[document.doc_id] = index
            first_of[document.doc_id] = admitted
            yield admitted

    def written(doc: PreparedDocument, stored: int) -> None:
        meter.writing(doc.tag, doc.name, stored, len(doc.chunks))

    added = False
    try:
        meter.start()
        stored = store_documents(
            library, prepared(), library.embedder.embed, cancel=cancel, written=written
        )
        for outcome in stored:
            settle(tags[outcome.doc_id], outcome)
            added = added or outcome.status == "added"
            yield from order.ready()
        for index in order.unsettled():  # cancelled before they were parsed
            settle(index, IngestOutcome.cancelled(shown[index]))
        yield from order.ready()
    finally:
        parses.close()
    if added:
        library.refresh_index()
