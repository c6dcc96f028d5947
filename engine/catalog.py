"""The SQLite side of a library: documents, their pages and chunks.

SQLite is the source of truth. A document row is written as `pending` before its vectors go to
Chroma and flipped to `ready` after; only ready documents are ever searched or listed, and a
library that opens with pending or deleting rows (a killed process) finishes or undoes them.
The lexical index is derived from the chunk rows, keyed by `generation`, which changes on every
commit that changes the set of ready chunks (and on no other: removing a pending or deleting
document leaves it as it is, so recovery after a crash does not outdate a saved index).

`Page` and `Chunk` are imported where rows become them: their modules pull in the PDF parsers,
which a command that only lists documents should not pay for.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.database import connection
from engine.metadata import DocumentMetadata

if TYPE_CHECKING:
    from engine.chunking import Chunk
    from engine.documents import Page

PENDING, READY, DELETING = "pending", "ready", "deleting"
CATALOG_FILE = "library.sqlite3"
_MAX_SQL_VARIABLES = 900  # under the smallest limit SQLite builds have (999)
# The Chunk fields, in order, of chunks `c`
_CHUNK_COLUMNS = (
    "c.chunk_id, c.doc_id, c.page_index, c.page_label, c.ordinal, c.char_start, c.char_end, c.text"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    empty_pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    added_at REAL NOT NULL,
    status TEXT NOT NULL,
    owner_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    doc_id TEXT NOT NULL,
    page_index INTEGER NOT NULL,
    page_label TEXT NOT NULL,
    text TEXT NOT NULL,
    ocr TEXT,  -- a recognised page's lines and boxes (JSON), NULL for a text layer
    PRIMARY KEY (doc_id, page_index)
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    page_index INTEGER NOT NULL,
    page_label TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_page ON chunks (doc_id, page_index, ordinal);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- a document's citation metadata (engine.metadata.DocumentMetadata as JSON); a library made
-- before it gets the table on opening, and its documents their rows from their PDFs
CREATE TABLE IF NOT EXISTS document_metadata (doc_id TEXT PRIMARY KEY, fields TEXT NOT NULL);
"""


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    filename: str
    size_bytes: int
    pages: int
    empty_pages: int
    chunks: int
    added_at: float
    status: str
    owner_pid: int  # the process writing a pending document; recovery leaves live ones alone


@dataclass(frozen=True)
class ReadyVersion:
    """Which set of ready documents a catalog holds. `generation` counts the changes to it;
    `fingerprint` digests it (each ready document's id, chunk count and time added), so what
    was derived from one set is never taken for another, even from a catalog restored from a
    backup, whose generation may come round again."""

    generation: int
    fingerprint: str


def _ready_version(db: sqlite3.Connection) -> ReadyVersion:
    generation = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
    digest = hashlib.sha256()
    for doc_id, chunks, added_at in db.execute(
        "SELECT doc_id, chunks, added_at FROM documents WHERE status = ? ORDER BY doc_id", (READY,)
    ):
        digest.update(f"{doc_id} {chunks} {added_at!r}\n".encode())
    return ReadyVersion(generation, digest.hexdigest())


class Catalog:
    """Documents, pages and chunks of one library, in one SQLite file."""

    def __init__(self, path: Path, timeout_s: float = 30.0):
        self.path = path
        self.timeout_s = timeout_s
        with self.connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(pages)")}
            if "ocr" not in columns:  # a library made before OCR
                db.execute("ALTER TABLE pages ADD COLUMN ocr TEXT")

    def connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path, self.timeout_s)

    # -- writes --------------------------------------------------------------------------------

    def add_pending(
        self, doc_id: str, filename: str, size_bytes: int, pages: list[Page], chunks: list[Chunk]
    ) -> None:
        empty = sum(1 for page in pages if not page.text.strip())
        with self.connect() as db:
            db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc_id,
                    filename,
                    size_bytes,
                    len(pages),
                    empty,
                    len(chunks),
                    time.time(),
                    PENDING,
                    os.getpid(),
                ),
            )
            db.executemany(
                "INSERT INTO pages VALUES (?, ?, ?, ?, ?)",
                [(doc_id, p.page_index, p.page_label, p.text, _ocr_json(p)) for p in pages],
            )
            # the table's columns are the Chunk fields, in order
            db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", map(astuple, chunks)
            )

    def set_status(self, doc_id: str, status: str) -> None:
        with self.connect() as db:
            db.execute("UPDATE documents SET status = ? WHERE doc_id = ?", (status, doc_id))
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def remove(self, doc_id: str) -> None:
        with self.connect() as db:
            db.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'generation' AND EXISTS"
                " (SELECT 1 FROM documents WHERE doc_id = ? AND status = ?)",
                (doc_id, READY),
            )
            for table in ("chunks", "pages", "document_metadata", "documents"):
                db.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc_id,))

    def set_metadata(self, doc_id: str, metadata: DocumentMetadata, replace: bool = True) -> None:
        """Store a document's metadata; with `replace` False, only if it has none yet."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.connect() as db:
            db.execute(
                f"{verb} INTO document_metadata VALUES (?, ?)",
                (doc_id, json.dumps(metadata.to_json(), ensure_ascii=False)),
            )

    # -- reads ---------------------------------------------------------------------------------

    def metadata(self) -> dict[str, DocumentMetadata]:
        """doc_id -> metadata, for every ready document (empty for one that has none yet)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT d.doc_id, m.fields FROM documents d LEFT JOIN document_metadata m"
                " USING (doc_id) WHERE d.status = ?",
                (READY,),
            ).fetchall()
        return {
            doc_id: DocumentMetadata.from_json(json.loads(fields)) if fields else DocumentMetadata()
            for doc_id, fields in rows
        }

    def without_metadata(self) -> list[str]:
        """The ready documents that have no metadata row (added before there were any)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT doc_id FROM documents WHERE status = ? AND doc_id NOT IN"
                " (SELECT doc_id FROM document_metadata)",
                (READY,),
            ).fetchall()
        return [row[0] for row in rows]

    def setting(self, key: str, default: str) -> str:
        """A per-library setting, stored with `default` on first read so it never changes."""
        with self.connect() as db:
            db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, default))
            return db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()[0]

    def library_id(self) -> str:
        """This library's random id, made on first use; it names the Chroma collection and is
        recorded in the saved lexical index, so neither is taken for another library's."""
        return self.setting("library_uuid", uuid.uuid4().hex)

    def generation(self) -> int:
        with self.connect() as db:
            return db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    def document(self, doc_id: str) -> DocumentRecord | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return DocumentRecord(*row) if row else None

    def documents(self, statuses: tuple[str, ...] = (READY,)) -> list[DocumentRecord]:
        marks = ",".join("?" * len(statuses))
        with self.connect() as db:
            rows = db.execute(
                f"SELECT * FROM documents WHERE status IN ({marks}) ORDER BY added_at, filename",
                statuses,
            ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def ready_chunks(self) -> list[Chunk]:
        """Every chunk of every ready document, in a stable order."""
        return self.ready_chunks_with_version()[1]

    def ready_version(self) -> ReadyVersion:
        with self.connect() as db:
            db.execute("BEGIN")
            return _ready_version(db)

    def ready_chunks_with_version(self) -> tuple[ReadyVersion, list[Chunk]]:
        """The ready chunks (as `ready_chunks`) and the version of the set they are, read in
        one transaction."""
        from engine.chunking import Chunk

        with self.connect() as db:
            db.execute("BEGIN")
            version = _ready_version(db)
            rows = db.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d USING (doc_id)"
                " WHERE d.status = ? ORDER BY c.rowid",
                (READY,),
            ).fetchall()
        return version, [Chunk(*row) for row in rows]

    def ready_chunks_by_id(self, chunk_ids: list[str]) -> dict[str, tuple[Chunk, str]]:
        """chunk_id -> (chunk, its document's file name), for those of ready documents."""
        from engine.chunking import Chunk

        if not chunk_ids:
            return {}
        found = {}
        with self.connect() as db:
            for start in range(0, len(chunk_ids), _MAX_SQL_VARIABLES):
                batch = chunk_ids[start : start + _MAX_SQL_VARIABLES]
                rows = db.execute(
                    f"SELECT {_CHUNK_COLUMNS}, d.filename FROM chunks c JOIN documents d"
                    f" USING (doc_id) WHERE c.chunk_id IN ({','.join('?' * len(batch))})"
                    " AND d.status = ?",
                    (*batch, READY),
                ).fetchall()
                found.update((row[0], (Chunk(*row[:-1]), row[-1])) for row in rows)
        return found

    def page(self, doc_id: str, page_index: int) -> Page | None:
        from engine.documents import Page
        from engine.ocr import PageOcr

        with self.connect() as db:
            row = db.execute(
                "SELECT page_index, page_label, text, ocr FROM pages"
                " WHERE doc_id = ? AND page_index = ?",
                (doc_id, page_index),
            ).fetchone()
        if row is None:
            return None
        ocr = PageOcr.from_json(json.loads(row[3])) if row[3] else None
        return Page(*row[:3], ocr=ocr)

    def ocr_confidences(
        self, pages: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[float, str]]:
        """(doc_id, page_index) -> (confidence, engine), for those of `pages` read by OCR: read
        out of the stored OCR JSON by SQLite, only for the pages asked (a scan's JSON is large).
        The asked pages are joined to `pages` by its key: `(doc_id, page_index) IN (VALUES ...)`
        made SQLite scan the whole table (20 ms a search at 50k chunks)."""
        pages = list(pages)
        found = {}
        step = _MAX_SQL_VARIABLES // 2
        with self.connect() as db:
            for start in range(0, len(pages), step):
                batch = pages[start : start + step]
                asked = ",".join(["(?, ?)"] * len(batch))
                rows = db.execute(
                    "SELECT p.doc_id, p.page_index, json_extract(p.ocr, '$.confidence'),"
                    f" json_extract(p.ocr, '$.engine') FROM (VALUES {asked})"
                    " AS asked JOIN pages p ON p.doc_id = asked.column1"
                    " AND p.page_index = asked.column2 WHERE p.ocr IS NOT NULL",
                    [value for page in batch for value in page],
                ).fetchall()
                # pages stored before there was a second engine were read by RapidOCR
                found.update(((d, i), (c, engine or "rapidocr")) for d, i, c, engine in rows)
        return found

    def page_chunks(self, doc_id: str, page_index: int) -> list[Chunk]:
        """The chunks of one page in reading order: each one's neighbours are beside it."""
        from engine.chunking import Chunk

        with self.connect() as db:
            rows = db.execute(
                "SELECT chunk_id, doc_id, page_index, page_label, ordinal, char_start, char_end,"
                " text FROM chunks WHERE doc_id = ? AND page_index = ? ORDER BY ordinal",
                (doc_id, page_index),
            ).fetchall()
        return [Chunk(*row) for row in rows]


def open_catalog(library_dir: Path) -> Catalog | None:
    """The catalog of an existing library folder, or None when there is no library there."""
    path = library_dir / CATALOG_FILE
    return Catalog(path) if path.exists() else None


def _ocr_json(page: Page) -> str | None:
    return json.dumps(page.ocr.to_json()) if page.ocr is not None else None
