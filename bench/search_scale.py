"""Hybrid search at scale: latency, memory and disk at 10k, 100k and 500k chunks.

    python bench/search_scale.py [--sizes 10000 100000 500000] [--work DIR] [--repeats 2]
    python bench/search_scale.py --measure LIBRARY_DIR   # one measurement, in this process

The corpus (../shared/corpus, else sample_docs) is ingested once into a seed library (kept in
--work, reused by later runs). Bigger libraries are then written straight into SQLite and Chroma
in large batches: the seed chunks copied under new document ids, 10-50 chunks a document, each
copy with its page's text and its seed vector jittered (Gaussian noise, renormalised), so BM25
and HNSW work on real text and realistic vectors without embedding 500k chunks. The lexical
index is built once per size (timed). The library grows in place from one size to the next
and is copied to WORK/<size> at each, so a size can be measured again later.

Each size is measured in a fresh process (`--measure`), so memory is that of a search process
alone: RSS after loading the query encoder, after the first search (BM25 index memory-mapped,
Chroma's HNSW index loaded) and after every timed search; then p50/p95 of hybrid search
(query embedding included) over bench/retrieval_queries.json, the share of it that is the query
embedding, and the same searches restricted by `doc_ids` to 1, 100 and 5,000 documents (checking
every hit comes from a selected document). Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
FILTER_SIZES = (1, 100, 5000)


# -- building --------------------------------------------------------------------------------


def seed_library(folder: Path, pdfs: list[Path]):
    """The corpus ingested into `folder` (once; a later run reuses it)."""
    from engine.config import Settings
    from engine.library import Library

    library = Library(Settings(library_dir=folder))
    if not library.documents():
        for outcome in library.ingest_many(pdfs):
            print(outcome.line(), file=sys.stderr)
    return library


def _seed_material(seed) -> tuple[list, dict, np.ndarray]:
    """The seed's chunks, its pages' (text, OCR JSON) and its chunks' vectors."""
    chunks = seed.catalog.ready_chunks()
    with seed.catalog.connect() as db:
        rows = db.execute("SELECT doc_id, page_index, text, ocr FROM pages").fetchall()
    pages = {(doc_id, index): (text, ocr) for doc_id, index, text, ocr in rows}
    stored = seed.vectors.vectors_of([c.chunk_id for c in chunks])
    vectors = np.stack([stored[c.chunk_id] for c in chunks]).astype(np.float32)
    return chunks, pages, vectors


def grow(folder: Path, seed, target: int, rng: np.random.Generator) -> dict:
    """Add documents of 10-50 copied seed chunks to the library in `folder` until it holds
    `target` ready chunks; returns how long the SQLite, Chroma and BM25 writes took."""
    from engine.catalog import CATALOG_FILE, READY
    from engine.config import Settings
    from engine.library import Library
    from engine.metadata import DocumentMetadata

    library = Library(Settings(library_dir=folder))
    held = len(library.catalog.ready_chunks())
    if held >= target:
        return {"chunks": held}
    chunks, pages, vectors = _seed_material(seed)
    metadata = json.dumps(DocumentMetadata().to_json())
    doc_rows, page_rows, chunk_rows, meta_rows = [], [], [], []
    ids, metas, rows = [], [], []
    cursor = held % len(chunks)
    made = held
    number = len(library.catalog.documents())
    while made < target:
        size = int(min(rng.integers(10, 51), target - made))
        doc_id = hashlib.sha256(f"scale copy {number}".encode()).hexdigest()
        number += 1
        taken = [(cursor + i) % len(chunks) for i in range(size)]
        cursor = (cursor + size) % len(chunks)
        page_of: dict[tuple[str, int], int] = {}
        for i, row in enumerate(taken):
            c = chunks[row]
            if (c.doc_id, c.page_index) not in page_of:
                page_of[(c.doc_id, c.page_index)] = len(page_of)
                text, ocr = pages[(c.doc_id, c.page_index)]
                page_rows.append((doc_id, len(page_of) - 1, c.page_label, text, ocr))
            page = page_of[(c.doc_id, c.page_index)]
            chunk_id = f"{doc_id[:16]}-{i}"
            chunk_rows.append(
                (chunk_id, doc_id, page, c.page_label, c.ordinal, c.char_start, c.char_end, c.text)
            )
            ids.append(chunk_id)
            metas.append({"doc_id": doc_id, "page_index": page})
            rows.append(row)
        doc_rows.append(
            (doc_id, f"copy-{number}.pdf", 0, len(page_of), 0, size, time.time(), READY, 0)
        )
        meta_rows.append((doc_id, metadata))
        made += size

    started = time.perf_counter()
    db = sqlite3.connect(folder / CATALOG_FILE)
    with db:
        db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", doc_rows)
        db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?)", page_rows)
        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk_rows)
        db.executemany("INSERT INTO document_metadata VALUES (?, ?)", meta_rows)
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    db.close()
    sqlite_s = time.perf_counter() - started

    started = time.perf_counter()
    collection, batch = library.vectors.collection, library.vectors.max_batch
    for start in range(0, len(ids), batch):
        picked = vectors[rows[start : start + batch]]
        jittered = picked + rng.normal(0, 0.02, picked.shape).astype(np.float32)
        jittered /= np.linalg.norm(jittered, axis=1, keepdims=True)
        collection.add(
            ids=ids[start : start + batch],
            embeddings=jittered,
            metadatas=metas[start : start + batch],
        )
    chroma_s = time.perf_counter() - started

    started = time.perf_counter()
    library.refresh_index()  # BM25 over every ready chunk, built once and saved
    lexical_s = time.perf_counter() - started
    return {
        "chunks": made,
        "documents": len(library.catalog.documents()),
        "sqlite_write_s": round(sqlite_s, 1),
        "chroma_write_s": round(chroma_s, 1),
        "lexical_build_s": round(lexical_s, 1),
    }


# -- measuring -------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def _percentiles(latencies: list[float]) -> dict:
    latencies = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def measure(folder: Path, repeats: int) -> dict:
    """Search latency and memory on the library in `folder`, in this (fresh) process."""
    from engine.config import Settings
    from engine.embeddings import Embedder
    from engine.library import Library

    queries = [q["query"] for q in json.loads((HERE / "retrieval_queries.json").read_text())]
    report = {"rss_start_mb": rss_mb()}
    settings = Settings(library_dir=folder)
    embedder = Embedder(settings.embedding_model)
    # the encoder search embeds queries with (a numpy one where the model allows it)
    embed = getattr(embedder, "embed_queries", embedder.embed)
    embed(queries[:1])
    report["rss_encoder_mb"] = rss_mb()
    library = Library(settings, embedder=embedder)
    documents = [record.doc_id for record in library.documents()]
    report["chunks"] = len(library.catalog.ready_chunks())
    report["documents"] = len(documents)

    started = time.perf_counter()
    library.search(queries[0], k=5)
    report["first_search_ms"] = round(1000 * (time.perf_counter() - started), 1)
    report["rss_after_first_search_mb"] = rss_mb()

    # the query embedding alone, timed on the same queries, to split the total
    embed_ms = []
    for query in queries:
        started = time.perf_counter()
        embed([query])
        embed_ms.append(1000 * (time.perf_counter() - started))
    # each search's own query embedding, timed inside it, to give what the rest of it took
    spent: dict[str, list[float]] = {}
    _timed(embedder, "embed_queries" if hasattr(embedder, "embed_queries") else "embed", spent, "e")
    latencies, rest = [], []
    for _ in range(repeats):
        for query in queries:
            spent.clear()
            started = time.perf_counter()
            library.search(query, k=5)
            latencies.append(1000 * (time.perf_counter() - started))
            rest.append(latencies[-1] - sum(spent.get("e", [])))
    report["hybrid"] = {"queries": len(latencies), **_percentiles(latencies)}
    report["query_embedding"] = _percentiles(embed_ms)
    report["hybrid_without_query_embedding"] = _percentiles(rest)
    report["rss_after_search_mb"] = rss_mb()

    rng = np.random.default_rng(1)
    report["doc_ids_filter"] = []
    for count in FILTER_SIZES:
        if count > len(documents):
            continue
        chosen = [documents[i] for i in rng.choice(len(documents), count, replace=False)]
        allowed = set(chosen)
        latencies, rest, outside, found = [], [], 0, 0
        for query in queries:
            spent.clear()
            started = time.perf_counter()
            hits = library.search(query, k=5, doc_ids=chosen)
            latencies.append(1000 * (time.perf_counter() - started))
            rest.append(latencies[-1] - sum(spent.get("e", [])))
            outside += sum(hit.doc_id not in allowed for hit in hits)
            found += len(hits)
        without = {f"without_query_embedding_{key}": ms for key, ms in _percentiles(rest).items()}
        report["doc_ids_filter"].append(
            {
                "documents": count,
                "hits": found,
                "hits_outside": outside,
                **_percentiles(latencies),
                **without,
            }
        )
    report["rss_end_mb"] = rss_mb()
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    report["rss_peak_mb"] = round(int(peak.split()[1]) / 1024, 1)
    report["disk_mb"] = {
        "total": disk_mb(folder),
        "chroma": disk_mb(folder / "chroma"),
        "lexical": disk_mb(folder / "lexical"),
        "sqlite": round(sum(p.stat().st_size for p in folder.glob("library.sqlite3*")) / 2**20, 1),
    }
    return report


def _timed(owner, name: str, spent: dict[str, list[float]], label: str) -> None:
    """Wrap `owner.name` so each call adds its milliseconds to spent[label]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.setdefault(label, []).append(1000 * (time.perf_counter() - started))

    setattr(owner, name, wrapper)


def profile(folder: Path, repeats: int) -> dict:
    """Median milliseconds per search spent in each stage, unfiltered and with each filter."""
    import engine.library as library_module
    from engine.config import Settings
    from engine.library import Library

    queries = [q["query"] for q in json.loads((HERE / "retrieval_queries.json").read_text())]
    library = Library(Settings(library_dir=folder))
    documents = [record.doc_id for record in library.documents()]
    library.search(queries[0], k=5)
    spent: dict[str, list[float]] = {}
    embedder = library.embedder
    for name in ("embed_queries", "embed"):
        if hasattr(embedder, name):
            _timed(embedder, name, spent, "query embedding")
            break
    _timed(library, "_current", spent, "snapshot check (catalog generation)")
    _timed(library.vectors, "nearest", spent, "Chroma query")
    _timed(library, "_dense", spent, "dense incl. Chroma")
    _timed(library._current().lexical, "top", spent, "BM25 top")
    _timed(library_module, "reciprocal_rank_fusion", spent, "fusion")
    _timed(library.catalog, "ready_chunks_by_id", spent, "SQLite hit rows")
    _timed(library.catalog, "ocr_confidences", spent, "SQLite OCR confidences")
    _timed(library, "search", spent, "search total")
    rng = np.random.default_rng(1)
    report = {"chunks": len(library.catalog.ready_chunks()), "documents": len(documents)}
    for count in (None, *FILTER_SIZES):
        if count is not None and count > len(documents):
            continue
        chosen = None
        if count is not None:
            chosen = [documents[i] for i in rng.choice(len(documents), count, replace=False)]
        spent.clear()
        for _ in range(repeats):
            for query in queries:
                library.search(query, k=5, doc_ids=chosen)
        label = "no filter" if count is None else f"doc_ids of {count} documents"
        report[label] = {stage: round(statistics.median(ms), 2) for stage, ms in spent.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 500000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/palimpsest-search-scale"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--measure", type=Path, help="measure the library in this folder only")
    parser.add_argument("--profile", type=Path, help="time each stage of search on this library")
    args = parser.parse_args()
    if args.profile:
        print(json.dumps(profile(args.profile, args.repeats), indent=2))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats)))
        return
    pdfs = sorted(args.corpus.glob("*.pdf")) or sorted((HERE.parent / "sample_docs").glob("*.pdf"))
    seed = seed_library(args.work / "seed", pdfs)
    rng = np.random.default_rng(0)
    report = {"seed_chunks": len(seed.catalog.ready_chunks()), "sizes": []}
    for size in sorted(args.sizes):
        built = grow(args.work / "library", seed, size, rng)
        print(f"built {built}", file=sys.stderr)
        # kept at each size, so a size can be measured again later (--measure WORK/SIZE)
        kept = args.work / str(size)
        if not kept.exists():
            shutil.copytree(args.work / "library", kept)
        command = [sys.executable, __file__, "--measure", str(kept)]
        command += ["--repeats", str(args.repeats)]
        measured = subprocess.run(command, capture_output=True, text=True, check=True)
        result = {"build": built, **json.loads(measured.stdout.strip().splitlines()[-1])}
        print(json.dumps(result), file=sys.stderr)
        report["sizes"].append(result)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
