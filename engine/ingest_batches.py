"""Storing a stream of chunked documents: embedding batched across documents, writes per document.

The embedding model is fastest on full batches, and a folder of short PDFs would otherwise embed
many part-filled ones (a 3-page letter has ~10 chunks); so a batch is filled from consecutive
documents' chunks. What reaches the stores still goes document by document, in the order that
keeps them consistent through a crash (engine/library.py): a document is recorded as pending just
before its first vectors are written, so at most one document is pending at any time, and it is
marked ready once its last ones are.

Cancelling (a `threading.Event`) is looked at before each batch and before each document is
begun: the document being written is undone, those not yet begun are dropped, and each of them is
reported as cancelled. Any way out of the stream, an exception or the consumer closing it
included, undoes whatever was begun and not finished.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.chunking import Chunk
from engine.documents import ParsedDocument
from engine.errors import first_line
from engine.ingest_outcome import IngestOutcome

EMBED_BATCH = 64  # chunks embedded per model call; bounds memory and the work a crash loses

# (texts) -> one unit vector per text
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class PreparedDocument:
    """A parsed file admitted to the library (not a duplicate) and cut into chunks."""

    parsed: ParsedDocument
    source: Path  # the file to copy into the library
    name: str  # as shown to the user
    chunks: list[Chunk]
    tag: int = 0  # the caller's number for it (its place among the files given)

    @property
    def doc_id(self) -> str:
        return self.parsed.doc_id


class DocumentWriter(Protocol):
    """The stores' side of a document's storing (engine.library.Library implements it)."""

    def begin(self, doc: PreparedDocument) -> None:
        """Keep the file and record the document as pending."""

    def write(self, doc: PreparedDocument, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Store some of its chunks' vectors."""

    def finish(self, doc: PreparedDocument) -> IngestOutcome:
        """Mark it ready (every chunk is stored); what became of the file."""

    def abandon(self, doc: PreparedDocument, begun: bool) -> None:
        """Give it up: undo what `begin` and `write` stored, when they ran."""


@dataclass(frozen=True)
class _Slice:
    doc: PreparedDocument
    start: int
    end: int

    @property
    def chunks(self) -> list[Chunk]:
        return self.doc.chunks[self.start : self.end]


# (document, how many of its chunks are stored now) -> None
Written = Callable[[PreparedDocument, int], None]


class _Stream:
    """The state of one `store_documents` run."""

    def __init__(self, writer: DocumentWriter, documents: Iterable[PreparedDocument]):
        self.writer = writer
        self.source = iter(documents)
        self.waiting: deque[_Slice] = deque()  # chunks pulled in but not yet embedded
        self.open: dict[str, PreparedDocument] = {}  # pulled in, not yet finished or given up
        self.begun: set[str] = set()

    def next_batch(self, size: int) -> list[_Slice]:
        """Up to `size` chunks, in order, from as many documents as it takes."""
        batch: list[_Slice] = []
        room = size
        while room > 0:
            if not self.waiting:
                doc = next(self.source, None)
                if doc is None:
                    break
                self.open[doc.doc_id] = doc
                self.waiting.append(_Slice(doc, 0, len(doc.chunks)))
            part = self.waiting.popleft()
            if part.doc.doc_id not in self.open:  # failed in an earlier batch
                continue
            end = min(part.end, part.start + room)
            batch.append(_Slice(part.doc, part.start, end))
            room -= end - part.start
            if end < part.end:
                self.waiting.appendleft(_Slice(part.doc, end, part.end))
        return batch

    def give_up(self, doc: PreparedDocument) -> None:
        self.open.pop(doc.doc_id, None)
        self.writer.abandon(doc, doc.doc_id in self.begun)
        self.begun.discard(doc.doc_id)

    def failed(self, doc: PreparedDocument, error: Exception) -> IngestOutcome:
        self.give_up(doc)
        reason = f"could not store the document ({first_line(error)})"
        return IngestOutcome(doc.name, "failed", reason, doc.doc_id)

    def cancel_all(self) -> Iterator[IngestOutcome]:
        """Give up every open document (the one being written first) and pull in no more."""
        for doc in list(self.open.values()):
            self.give_up(doc)
            yield IngestOutcome.cancelled(doc.name, doc.doc_id)

    def store(
        self, part: _Slice, vectors: np.ndarray, written: Written | None
    ) -> IngestOutcome | None:
        """Write one slice; the document's outcome when this was its last (else None)."""
        doc = part.doc
        if part.start == 0:
            self.begun.add(doc.doc_id)  # first: a `begin` that fails half-way is undone too
            self.writer.begin(doc)
        if part.end > part.start:
            self.writer.write(doc, part.chunks, vectors)
        if written is not None:
            written(doc, part.end)
        if part.end < len(doc.chunks):
            return None
        outcome = self.writer.finish(doc)
        del self.open[doc.doc_id]
        self.begun.discard(doc.doc_id)
        return outcome


def store_documents(
    writer: DocumentWriter,
    documents: Iterable[PreparedDocument],
    embed: Embed,
    *,
    batch_size: int = EMBED_BATCH,
    cancel: threading.Event | None = None,
    written: Written | None = None,
) -> Iterator[IngestOutcome]:
    """Store each document; yield each one's outcome as soon as it is known.

    `documents` is pulled lazily, only when a batch needs more chunks, so a producer may still
    be parsing the next file while this one is embedded.
    """
    stream = _Stream(writer, documents)
    cancelled = cancel.is_set if cancel is not None else (lambda: False)
    try:
        while batch := stream.next_batch(batch_size):
            if cancelled():
                yield from stream.cancel_all()
                return
            try:
                vectors = embed([chunk.text for part in batch for chunk in part.chunks])
            except Exception as error:
                for doc in {part.doc.doc_id: part.doc for part in batch}.values():
                    yield stream.failed(doc, error)
                continue
            offset = 0
            for part in batch:
                count = part.end - part.start
                here = vectors[offset : offset + count]
                offset += count
                if part.doc.doc_id not in stream.open:
                    continue
                if part.start == 0 and cancelled():
                    yield from stream.cancel_all()
                    return
                try:
                    outcome = stream.store(part, here, written)
                except Exception as error:
                    yield stream.failed(part.doc, error)
                    continue
                if outcome is not None:
                    yield outcome
    finally:
        for doc in list(stream.open.values()):
            stream.give_up(doc)
