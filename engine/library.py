"""A library: PDFs made searchable, with SQLite, Chroma and BM25 kept consistent.

Ingestion order is what keeps the three stores consistent through a crash: the whole file is
parsed and chunked first (a bad file fails before anything is written); then the document is
recorded as pending in SQLite; then its vectors go to Chroma batch by batch; then it is marked
ready. Searches see ready documents only, and opening a library undoes whatever a dead process
left pending or half-deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.catalog import CATALOG_FILE, DELETING, PENDING, READY, Catalog, DocumentRecord
from engine.chunking import Chunk, chunk_pages
from engine.config import Settings
from engine.database import LibraryBusyError
from engine.documents import IngestError, Page, ParsedDocument, read_pdf
from engine.embeddings import Embedder
from engine.errors import first_line
from engine.fusion import reciprocal_rank_fusion
from engine.ingest_batches import PreparedDocument, store_documents
from engine.ingest_outcome import IngestOutcome
from engine.lexical import LexicalIndex
from engine.lexical_store import LexicalStore, ReadyIndex
from engine.metadata import DocumentMetadata, MetadataError, edited
from engine.ocr import is_low_confidence
from engine.pdf_metadata import extract_metadata
from engine.processes import process_alive
from engine.search_hit import SearchHit
from engine.vectors import VectorStore

SEARCH_MODES = ("hybrid", "dense", "lexical")
# The dense side of a `doc_ids` filter (`Library._dense`): Chroma's own filter (a `where` on the
# documents, or their chunk ids) walks most of its HNSW graph when few chunks pass it (60 ms for
# one document of 50k chunks, 160 ms for 1,000 documents), so a selection that is at least a
# share of the library is first looked for among the unfiltered nearest neighbours, reading up
# to OVERFETCH_MAX of them, and only when they hold too few of it is Chroma asked to filter.
OVERFETCH = 3  # neighbours read: this many times the candidates' share of the selection
OVERFETCH_MAX = 1000

# (fraction done, what is happening) -> None
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class _Snapshot:
    """What search needs about the ready chunks, renewed when the catalog changes: the chunk
    texts and file names are read from SQLite for the hits only."""

    generation: int
    lexical: LexicalIndex
    rows: dict[str, int]  # chunk_id -> row of the lexical index, for every ready chunk
    rows_by_doc: dict[str, np.ndarray]

    @classmethod
    def of(cls, index: ReadyIndex) -> _Snapshot:
        rows = {chunk_id: row for row, chunk_id in enumerate(index.lexical.chunk_ids)}
        return cls(index.generation, index.lexical, rows, index.rows_by_doc())


def ocr_note(parsed) -> str:
    """What the upload says of its recognised pages: how many, how sure, which were weak."""
    recognised = parsed.recognised_pages
    note = f"{len(recognised)} pages read by OCR (confidence {parsed.ocr_confidence:.2f}"
    weak = [str(index + 1) for index in parsed.low_confidence_pages]
    if weak:
        note += f"; low on p. {', '.join(weak[:10])}" + ("…" if len(weak) > 10 else "")
    return note + ")"


MAX_FILENAME_CHARS = 200
# Control characters (C0, C1), line and paragraph separators, byte-order marks and the bidi
# marks, embeddings, overrides and isolates: "invoice\u202efdp.exe" would display as
# "invoiceexe.pdf".
_UNSAFE_IN_NAMES = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
# Unpaired surrogates: how Python decodes a file name that is not valid UTF-8 (b"\xff.pdf" ->
# "\udcff.pdf"); they cannot be stored as UTF-8 nor printed, so they show as U+FFFD.
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def display_filename(name: str) -> str:
    """A file name safe to show and store: no folders, no control characters, bounded length.

    A name cut to length keeps its extension. The library never writes a file under this name
    (stored files are named by content hash), so this is about what people and logs see.
    """
    base = re.split(r"[\\/]", name)[-1]
    base = _SURROGATES.sub("\ufffd", _UNSAFE_IN_NAMES.sub("", base)).strip()
    if not base.strip("."):  # "", "." and ".." are not names of a file
        return "document.pdf"
    if len(base) > MAX_FILENAME_CHARS:
        stem, suffix = os.path.splitext(base)
        if len(suffix) > 16:
            stem, suffix = base, ""
        base = stem[: MAX_FILENAME_CHARS - len(suffix)].rstrip() + suffix
    return base


class Library:
    """The documents of one library folder and hybrid search over them."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.root = settings.library_dir
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.root / CATALOG_FILE)
        self.vectors = VectorStore(
            self.root / "chroma", f"palimpsest-{self.catalog.library_id()}", settings.chroma_url
        )
        self.lexical = LexicalStore(self.root / "lexical", self.catalog)
        self._embedder = embedder
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._adding: set[str] = set()  # documents this process is writing right now
        self.recover()
        self._fill_missing_metadata()

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.settings.embedding_model)
            return self._embedder

    # -- documents -----------------------------------------------------------------------------

    def documents(self) -> list[DocumentRecord]:
        return self.catalog.documents()

    def document(self, doc_id: str) -> DocumentRecord | None:
        record = self.catalog.document(doc_id)
        return record if record and record.status == READY else None

    def page(self, doc_id: str, page_index: int) -> Page | None:
        return self.catalog.page(doc_id, page_index)

    def pdf_path(self, doc_id: str) -> Path:
        return self.files_dir / f"{doc_id}.pdf"

    def ingest_many(self, paths: Iterable[str | Path]) -> Iterator[IngestOutcome]:
        for path in paths:
            yield self.ingest(path)

    def ingest(
        self, path: str | Path, filename: str | None = None, progress: Progress | None = None
    ) -> IngestOutcome:
        """Add one PDF. Never raises for a bad file: the outcome says what happened and why.

        Many files at once go through `engine.ingest_pipeline`, which shares everything after
        the parse with this."""
        name = display_filename(filename or Path(path).name)
        report = progress or (lambda fraction, message: None)
        try:
            report(0.0, f"reading {name}")
            parsed = read_pdf(
                path,
                max_bytes=int(self.settings.max_file_mb * 2**20),
                max_pages=self.settings.max_pages,
                filename=name,
            )
        except IngestError as error:
            return IngestOutcome(name, "failed", str(error))
        prepared = self.prepare(parsed, Path(path), name)
        if isinstance(prepared, IngestOutcome):
            return prepared

        def written(doc: PreparedDocument, stored: int) -> None:
            report(stored / max(len(doc.chunks), 1), f"embedding {name}")

        return next(store_documents(self, [prepared], self.embedder.embed, written=written))

    def prepare(
        self, parsed: ParsedDocument, source: Path, name: str, tag: int = 0
    ) -> PreparedDocument | IngestOutcome:
        """The parsed file chunked and reserved for storing (`store_documents` then stores or
        gives it up); or, when it is not to be stored, its outcome (a duplicate, a file this
        or another process is adding right now, one that cannot be chunked)."""
        doc_id = parsed.doc_id
        with self._lock:
            existing = self.catalog.document(doc_id)
            if existing is not None and existing.status == READY:
                message = f"already in the library as {existing.filename}"
                return IngestOutcome(
                    name, "duplicate", message, doc_id, existing.pages, existing.chunks
                )
            if doc_id in self._adding or (existing is not None and self._in_flight(existing)):
                return IngestOutcome(name, "failed", "this file is being added right now", doc_id)
            self._adding.add(doc_id)
        try:
            if existing is not None:  # left behind by a failed attempt: start again
                self._discard(doc_id)
            chunks = chunk_pages(doc_id, parsed.pages, self.embedder.token_offsets)
        except Exception as error:
            self._release(doc_id)
            reason = f"could not store the document ({first_line(error)})"
            return IngestOutcome(name, "failed", reason, doc_id)
        return PreparedDocument(parsed, source, name, chunks, tag)

    # -- storing, for engine.ingest_batches (the order that keeps the stores consistent) -------

    def begin(self, doc: PreparedDocument) -> None:
        staged = self.files_dir / f".{doc.doc_id}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(doc.source, staged)
            os.replace(staged, self.pdf_path(doc.doc_id))
        finally:
            staged.unlink(missing_ok=True)
        parsed = doc.parsed
        self.catalog.add_pending(doc.doc_id, doc.name, parsed.size_bytes, parsed.pages, doc.chunks)

    def write(self, doc: PreparedDocument, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.vectors.add(chunks, vectors)

    def finish(self, doc: PreparedDocument) -> IngestOutcome:
        self.catalog.set_status(doc.doc_id, READY)
        self._release(doc.doc_id)
        parsed = doc.parsed
        # The document is in; metadata a busy catalog cannot take now is read at the next open.
        with contextlib.suppress(LibraryBusyError):
            first_page = parsed.pages[0].text if parsed.pages else ""  # OCR's, for a scan
            self.catalog.set_metadata(
                doc.doc_id, extract_metadata(self.pdf_path(doc.doc_id), first_page)
            )
        note = f"{len(parsed.pages)} pages, {len(doc.chunks)} chunks"
        if parsed.recognised_pages:
            note += "; " + ocr_note(parsed)
        if parsed.empty_pages:
            note += f"; {parsed.empty_pages} pages without extractable text (blank or unreadable)"
        return IngestOutcome(
            doc.name, "added", note, doc.doc_id, len(parsed.pages), len(doc.chunks)
        )

    def abandon(self, doc: PreparedDocument, begun: bool) -> None:
        try:
            if begun:
                with contextlib.suppress(Exception):  # what cannot be undone now, recovery undoes
                    self._discard(doc.doc_id)
        finally:
            self._release(doc.doc_id)

    def _release(self, doc_id: str) -> None:
        with self._lock:
            self._adding.discard(doc_id)

    def delete(self, doc_id: str) -> bool:
        """Remove a document from all three stores; False when it is not in the library."""
        record = self.catalog.document(doc_id)
        if record is None or record.status != READY:
            return False
        self.catalog.set_status(doc_id, DELETING)
        self._discard(doc_id)
        return True

    def _discard(self, doc_id: str) -> None:
        self.vectors.delete_document(doc_id)
        self.catalog.remove(doc_id)
        self.pdf_path(doc_id).unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """Undo documents a dead process left pending or half-deleted; returns their ids."""
        undone = []
        for record in self.catalog.documents(statuses=(PENDING, DELETING)):
            if self._in_flight(record):
                continue
            self._discard(record.doc_id)
            undone.append(record.doc_id)
        known = {record.doc_id for record in self.catalog.documents((READY, PENDING, DELETING))}
        for stray in self.files_dir.iterdir():
            if stray.name.startswith(".") or stray.stem not in known:
                stray.unlink(missing_ok=True)
        return undone

    def _in_flight(self, record: DocumentRecord) -> bool:
        """Whether a pending document is still being written, by this process or a live one."""
        if record.status != PENDING:
            return False
        if record.owner_pid == os.getpid():
            return record.doc_id in self._adding
        return process_alive(record.owner_pid)

    # -- citation metadata ---------------------------------------------------------------------

    def metadata(self) -> dict[str, DocumentMetadata]:
        """doc_id -> citation metadata, for every document in the library."""
        return self.catalog.metadata()

    def edit_metadata(self, doc_id: str, **changes: str | list[str]) -> DocumentMetadata:
        """Change some of a document's metadata fields (see `engine.metadata.edited`)."""
        current = self.catalog.metadata().get(doc_id)
        if current is None:
            raise MetadataError(f"no document {doc_id!r} in the library")
        updated = edited(current, **changes)
        self.catalog.set_metadata(doc_id, updated)
        return updated

    def set_metadata(self, doc_id: str, metadata: DocumentMetadata) -> None:
        """Replace a document's metadata whole (as a BibTeX import does)."""
        self.catalog.set_metadata(doc_id, metadata)

    def _fill_missing_metadata(self) -> None:
        """Documents added before metadata was kept get it from their stored PDFs, once."""
        for doc_id in self.catalog.without_metadata():
            self.catalog.set_metadata(doc_id, extract_metadata(self.pdf_path(doc_id)), False)

    # -- search --------------------------------------------------------------------------------

    def refresh_index(self) -> None:
        """Bring the search index (and the saved one) up to date with the catalog now, rather
        than at the next search: an ingest ends with it, so the next search opens, not builds."""
        self._current()

    def _current(self) -> _Snapshot:
        generation = self.catalog.generation()
        with self._lock:
            if self._snapshot is None or self._snapshot.generation != generation:
                self._snapshot = _Snapshot.of(self.lexical.open())
            return self._snapshot

    def search(
        self, query: str, k: int = 5, doc_ids: list[str] | None = None, mode: str = "hybrid"
    ) -> list[SearchHit]:
        """The `k` chunks that best answer `query`, optionally only from `doc_ids`."""
        return self.search_many([query], k, [doc_ids], mode)[0]

    def search_many(
        self,
        queries: list[str],
        k: int = 5,
        doc_ids: list[list[str] | None] | None = None,
        mode: str = "hybrid",
    ) -> list[list[SearchHit]]:
        """`search` for each query (each with its own `doc_ids`), the queries embedded in one
        batch: a drafting step retrieves for every block at once."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {SEARCH_MODES}")
        doc_ids = doc_ids or [None] * len(queries)
        snapshot = self._current()
        asked = [i for i, q in enumerate(queries) if q.strip()] if k > 0 and snapshot.rows else []
        vectors = {}
        if mode in ("hybrid", "dense") and asked:
            embedded = self.embedder.embed_queries([queries[i] for i in asked])
            vectors = dict(zip(asked, embedded, strict=True))
        ranked = {
            i: self._rank(snapshot, queries[i], vectors.get(i), k, doc_ids[i], mode) for i in asked
        }
        # The hits of all the queries read from SQLite at once.
        stored = self.catalog.ready_chunks_by_id(
            list({chunk_id for best in ranked.values() for chunk_id, _ in best})
        )
        recognised = self.catalog.ocr_confidences(
            {(chunk.doc_id, chunk.page_index) for chunk, _ in stored.values()}
        )
        results: list[list[SearchHit]] = [[] for _ in queries]
        for i, best in ranked.items():
            results[i] = _hits(best, stored, recognised)
        return results

    def _rank(
        self,
        snapshot: _Snapshot,
        query: str,
        vector: np.ndarray | None,
        k: int,
        doc_ids: list[str] | None,
        mode: str,
    ) -> list[tuple[str, float]]:
        """The `k` best (chunk_id, score) pairs for one query."""
        candidates = max(4 * k, 50)
        rankings: list[list[tuple[str, float]]] = []
        allowed = None  # the rows of the documents in `doc_ids`, each once
        if doc_ids is not None:  # (documents' rows are disjoint: np.unique cost 80 ms at 150k)
            rows = snapshot.rows_by_doc
            parts = [rows[d] for d in dict.fromkeys(doc_ids) if d in rows]
            allowed = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if vector is not None:
            rankings.append(self._dense(snapshot, vector, candidates, allowed))
        if mode in ("hybrid", "lexical"):
            rankings.append(snapshot.lexical.top(query, candidates, allowed))
        if len(rankings) == 1:
            ranked = rankings[0]
        else:  # hybrid: [dense, lexical]
            ranked = reciprocal_rank_fusion(
                [[cid for cid, _ in r] for r in rankings],
                weights=[1.0, self.settings.lexical_weight],
            )
        return ranked[:k]

    def _dense(
        self, snapshot: _Snapshot, vector: np.ndarray, n: int, allowed: np.ndarray | None
    ) -> list[tuple[str, float]]:
        """The `n` chunks nearest `vector`, only from the rows `allowed` when given."""
        if allowed is not None and allowed.size == 0:
            return []
        # Chroma may hold chunks of a document still being added: only ready ones count.
        wanted = snapshot.rows
        if allowed is None:
            nearest = self.vectors.nearest(vector, n)
            return [(chunk_id, score) for chunk_id, score in nearest if chunk_id in wanted]
        mask = np.zeros(len(snapshot.lexical), dtype=bool)
        mask[allowed] = True
        fetch = -(-OVERFETCH * n * mask.size // allowed.size)
        if fetch <= OVERFETCH_MAX:
            nearest = self.vectors.nearest(vector, fetch)
            kept = [(c, s) for c, s in nearest if c in wanted and mask[wanted[c]]]
            if len(kept) >= min(n, allowed.size):  # the selection's n best are among them
                return kept[:n]
        chunk_ids = [snapshot.lexical.chunk_ids[row] for row in allowed]
        return self.vectors.nearest_among(vector, n, chunk_ids)

    def widen(self, hit: SearchHit, radius: int = 1) -> SearchHit:
        """The hit grown to include `radius` neighbouring chunks on each side on its page."""
        siblings = self.catalog.page_chunks(hit.doc_id, hit.page_index)
        page = self.catalog.page(hit.doc_id, hit.page_index)
        position = next((i for i, c in enumerate(siblings) if c.chunk_id == hit.chunk_id), None)
        if page is None or position is None:
            return hit
        first = siblings[max(0, position - radius)]
        last = siblings[min(len(siblings) - 1, position + radius)]
        start, end = min(first.char_start, hit.char_start), max(last.char_end, hit.char_end)
        return replace(hit, char_start=start, char_end=end, text=page.text[start:end])


def _hits(
    ranked: list[tuple[str, float]],
    stored: dict[str, tuple[Chunk, str]],
    recognised: dict[tuple[str, int], tuple[float, str]],
) -> list[SearchHit]:
    """The ranked chunks as hits, from their `stored` rows (those of a document deleted since
    the search's snapshot was taken drop out), marked with their page's OCR confidence."""
    hits = []
    for chunk_id, score in ranked:
        if chunk_id not in stored:
            continue
        chunk, filename = stored[chunk_id]
        confidence, engine = recognised.get((chunk.doc_id, chunk.page_index), (None, ""))
        hits.append(
            SearchHit(
                chunk_id=chunk.chunk_id,
                doc_id=chunk.doc_id,
                filename=filename,
                page_index=chunk.page_index,
                page_label=chunk.page_label,
                char_start=chunk.char_start,
                char_end=chunk.char_end,
                score=round(score, 6),
                text=chunk.text,
                ocr_confidence=None if confidence is None else round(confidence, 4),
                low_confidence=confidence is not None and is_low_confidence(confidence, engine),
            )
        )
    return hits
