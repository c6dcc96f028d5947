"""What a library folder holds, store by store, for tests that kill the process writing it.

Run in a separate process (`python tests/library_state.py raw|recovered LIBRARY`) so the test
process never opens the embedded Chroma store that the app it restarts will open too:

- `raw`: the folder as the dead process left it, read without any recovery: every document row
  with its status, and how many pages, chunks, vectors and stored files it has in each store
  (for every document any store knows of, and for each `--probe` document).
- `recovered`: the folder opened as a `Library` (which undoes half-written documents), then the
  same counts, plus a BM25 search for each `--probe DOC_ID=QUERY` (the documents it finds).

`distinctive_queries` picks, for each PDF, words that no other of the given PDFs contains, so a
lexical search for them finds that document and nothing else, or nothing when it is absent.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import bm25s
import Stemmer

STEMMER = Stemmer.Stemmer("english")


def distinctive_queries(pdfs: list[Path], words: int = 3) -> dict[str, dict]:
    """doc_id -> {"filename", "query"}: the `words` most frequent words (5+ letters) of each
    PDF whose stems occur in no other of the PDFs."""
    from engine.documents import read_pdf

    counts: dict[str, Counter] = {}
    names: dict[str, str] = {}
    for path in pdfs:
        parsed = read_pdf(path, max_bytes=2**31, max_pages=100_000)
        text = "\n".join(page.text for page in parsed.pages)
        tokens = bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)[0]
        counts[parsed.doc_id] = Counter(t for t in tokens if t.isalpha() and len(t) >= 5)
        names[parsed.doc_id] = path.name
    stems = {doc_id: {STEMMER.stemWord(w) for w in words_} for doc_id, words_ in counts.items()}
    queries = {}
    for doc_id, words_ in counts.items():
        elsewhere = set().union(*(s for other, s in stems.items() if other != doc_id))
        unique = [w for w, _ in words_.most_common() if STEMMER.stemWord(w) not in elsewhere]
        if len(unique) < words:
            raise AssertionError(f"{names[doc_id]} has no {words} words of its own: {unique}")
        queries[doc_id] = {"filename": names[doc_id], "query": " ".join(unique[:words])}
    return queries


def _table_counts(database: Path) -> dict:
    with sqlite3.connect(database, timeout=30) as db:
        documents = {
            row[0]: {"filename": row[1], "pages": row[2], "chunks": row[3], "status": row[4]}
            for row in db.execute("SELECT doc_id, filename, pages, chunks, status FROM documents")
        }
        pages = dict(db.execute("SELECT doc_id, count(*) FROM pages GROUP BY doc_id").fetchall())
        chunks = dict(db.execute("SELECT doc_id, count(*) FROM chunks GROUP BY doc_id").fetchall())
        row = db.execute("SELECT value FROM settings WHERE key = 'library_uuid'").fetchone()
    return {
        "documents": documents,
        "page_rows": pages,
        "chunk_rows": chunks,
        "library_uuid": row[0] if row else None,
    }


def _store_counts(library_dir: Path, tables: dict, vectors, expected: set[str]) -> dict:
    """Counts per document id: every id any store knows of, and the `expected` ones."""
    doc_ids = set(tables["documents"]) | set(tables["page_rows"]) | set(tables["chunk_rows"])
    doc_ids |= expected
    files = sorted(p.name for p in (library_dir / "files").iterdir())
    doc_ids |= {name.split(".")[0] for name in files if not name.startswith(".")}
    return {
        **tables,
        "vectors": {doc_id: vectors.count(doc_id) for doc_id in sorted(doc_ids)},
        "vectors_total": vectors.count(),
        "files": files,
    }


def raw_state(library_dir: Path, expected: set[str] = frozenset()) -> dict:
    """The stores as they are, with nothing recovered (Chroma is opened, never written)."""
    from engine.vectors import VectorStore

    tables = _table_counts(library_dir / "library.sqlite3")
    if tables["library_uuid"] is None:
        raise AssertionError("the library never recorded its Chroma collection")
    vectors = VectorStore(library_dir / "chroma", f"palimpsest-{tables['library_uuid']}")
    return _store_counts(library_dir, tables, vectors, set(expected))


def recovered_state(library_dir: Path, probes: dict[str, str]) -> dict:
    """The stores after opening the folder as a `Library`, and what each probe search finds."""
    from engine.config import Settings
    from engine.library import Library

    library = Library(Settings(library_dir=library_dir))
    tables = _table_counts(library.catalog.path)
    state = _store_counts(library_dir, tables, library.vectors, set(probes))
    state["found"] = {
        doc_id: [hit.doc_id for hit in library.search(query, k=5, mode="lexical")]
        for doc_id, query in probes.items()
    }
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["raw", "recovered"])
    parser.add_argument("library", type=Path)
    parser.add_argument("--probe", action="append", default=[], metavar="DOC_ID=QUERY")
    args = parser.parse_args(argv)
    probes = dict(probe.split("=", 1) for probe in args.probe)
    if args.mode == "raw":
        state = raw_state(args.library, set(probes))
    else:
        state = recovered_state(args.library, probes)
    json.dump(state, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]
    sys.exit(main())
