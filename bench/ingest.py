"""Ingestion throughput and hybrid search latency.

    python bench/ingest.py [--corpus ../shared/corpus] [--sizes 1000 10000 50000]
    python bench/ingest.py --scale [--pages 10000] [--workers N]

Prints JSON:
- ingest: pages/s and chunks/s end to end on the corpus, and the same chunk texts embedded by
  the model alone in the same run (the baseline): `ingest_over_embedding` is the ratio of the two
  times (target <= 1.5: parsing and storing must not dominate).
- text_layer: pages/s of reading the same PDFs' text layers alone, laid out in reading order
  with tables (engine/layout.py): no OCR, chunking or embedding.
- search: p50/p95 latency of hybrid search (query embedding included) over libraries of 1k, 10k
  and 50k chunks. The larger libraries repeat the corpus chunks under new document ids with
  jittered copies of their real vectors, so BM25 and HNSW work on realistic text and vectors
  without embedding 50k chunks first.
- scale (`--scale`): a library of `--pages` pages (default 10,000) ingested through the pipeline
  (engine/ingest_pipeline.py: parsing in worker processes, embedding batched across documents):
  the corpus and sample PDFs repeated, each copy with a unique PDF comment appended so that its
  content hash (its doc_id) differs. Reports pages/s, the share of the time spent in the
  embedding model, and `ingest_over_embedding`: the run's time over the model's own time for
  the same chunk texts, embedded alone afterwards (target <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium

from engine.catalog import READY
from engine.config import Settings
from engine.embeddings import Embedder
from engine.ingest_batches import EMBED_BATCH
from engine.ingest_parse import page_count
from engine.ingest_pipeline import default_workers, ingest_files
from engine.layout import page_layout
from engine.library import Library

HERE = Path(__file__).resolve().parent


def measure_ingest(library: Library, pdfs: list[Path]) -> dict:
    started = time.perf_counter()
    outcomes = list(library.ingest_many(pdfs))
    total_s = time.perf_counter() - started
    pages = sum(o.pages for o in outcomes if o.status == "added")
    chunks = sum(o.chunks for o in outcomes if o.status == "added")
    texts = [c.text for c in library.catalog.ready_chunks()]
    started = time.perf_counter()
    library.embedder.embed(texts)
    embed_s = time.perf_counter() - started
    return {
        "documents": len(outcomes),
        "pages": pages,
        "chunks": chunks,
        "seconds": round(total_s, 2),
        "pages_per_s": round(pages / total_s, 2),
        "chunks_per_s": round(chunks / total_s, 2),
        "embedding_only_seconds": round(embed_s, 2),
        "embedding_share": round(min(embed_s / total_s, 1.0), 3),
        "ingest_over_embedding": round(total_s / embed_s, 3),
    }


def measure_text_layer(pdfs: list[Path]) -> dict:
    pages = 0
    started = time.perf_counter()
    for pdf in pdfs:
        document = pdfium.PdfDocument(str(pdf))
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            page_layout(page, textpage)
            textpage.close()
            page.close()
            pages += 1
        document.close()
    seconds = time.perf_counter() - started
    return {"pages": pages, "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1)}


def grow_library(library: Library, target_chunks: int, rng: np.random.Generator) -> None:
    """Add copies of the ready chunks under new document ids until the library holds enough."""
    seed_chunks = library.catalog.ready_chunks()
    stored = library.vectors.vectors_of([c.chunk_id for c in seed_chunks])
    vectors = np.stack([stored[c.chunk_id] for c in seed_chunks])
    while len(library.catalog.ready_chunks()) < target_chunks:
        copy = len(library.documents())
        doc_id = f"{copy:08d}" + "c" * 56
        needed = target_chunks - len(library.catalog.ready_chunks())
        batch = seed_chunks[:needed]
        clones = [
            replace(c, chunk_id=f"{doc_id[:16]}-{i}", doc_id=doc_id) for i, c in enumerate(batch)
        ]
        jittered = vectors[: len(batch)] + rng.normal(0, 0.02, (len(batch), vectors.shape[1]))
        jittered /= np.linalg.norm(jittered, axis=1, keepdims=True)
        library.catalog.add_pending(doc_id, f"copy-{copy}.pdf", 0, [], clones)
        library.vectors.add(clones, jittered.astype(np.float32))
        library.catalog.set_status(doc_id, READY)


def measure_search(library: Library, queries: list[str], repeats: int) -> dict:
    library.search(queries[0], k=5)  # builds the BM25 snapshot outside the timing
    latencies = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            library.search(query, k=5)
            latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "chunks": len(library.catalog.ready_chunks()),
        "queries": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def distinct_copies(sources: list[Path], pages: int, folder: Path) -> list[Path]:
    """Copies of `sources`, round robin, until they hold `pages` pages; each copy ends with its
    own PDF comment (after %%EOF, which readers ignore), so its sha256, the doc_id, is new."""
    counts = {source: page_count(source) for source in sources}
    readable = [source for source in sources if counts[source] > 0]
    copies, total = [], 0
    while total < pages:
        source = readable[len(copies) % len(readable)]
        copy = folder / f"{len(copies):05d}-{source.name}"
        copy.write_bytes(source.read_bytes() + f"\n%palimpsest-bench-copy {len(copies)}\n".encode())
        copies.append(copy)
        total += counts[source]
    return copies


def measure_scale(embedder: Embedder, pdfs: list[Path], workers: int, folder: Path) -> dict:
    """Ingest `pdfs` through the pipeline into a fresh library; time it, and the model alone."""
    library = Library(Settings(library_dir=folder), embedder=embedder)
    embedder.embed(["warm up"])  # the model loads outside the timing, as in a running app
    real_embed, in_model = embedder.embed, []

    def timed(texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = real_embed(texts)
        in_model.append(time.perf_counter() - started)
        return vectors

    embedder.embed = timed
    started = time.perf_counter()
    outcomes = list(ingest_files(library, pdfs, workers=workers))
    total_s = time.perf_counter() - started
    embedder.embed = real_embed
    added = [o for o in outcomes if o.status == "added"]
    pages = sum(o.pages for o in added)
    texts = [c.text for c in library.catalog.ready_chunks()]
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        embedder.embed(texts[start : start + EMBED_BATCH])
    model_s = time.perf_counter() - started
    return {
        "workers": workers,
        "files": len(pdfs),
        "added": len(added),
        "failed": [o.line() for o in outcomes if o.status == "failed"],
        "pages": pages,
        "chunks": len(texts),
        "seconds": round(total_s, 1),
        "pages_per_s": round(pages / total_s, 2),
        "embedding_calls": len(in_model),
        "embedding_share": round(sum(in_model) / total_s, 3),
        "embedding_only_seconds": round(model_s, 1),
        "ingest_over_embedding": round(total_s / model_s, 3),
    }


def run_scale(args: argparse.Namespace, pdfs: list[Path], embedder: Embedder) -> dict:
    sources = pdfs + sorted((HERE.parent / "sample_docs").glob("*.pdf"))
    with tempfile.TemporaryDirectory() as folder:
        copies = Path(folder) / "pdfs"
        copies.mkdir()
        library_pdfs = distinct_copies(sources, args.pages, copies)
        workers = default_workers() if args.workers is None else args.workers
        return measure_scale(embedder, library_pdfs, workers, Path(folder) / "library")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scale", action="store_true", help="only the at-scale ingest")
    parser.add_argument("--pages", type=int, default=10_000, help="--scale: library size")
    parser.add_argument("--workers", type=int, help="--scale: parse workers (default: as the CLI)")
    args = parser.parse_args()
    pdfs = sorted(args.corpus.glob("*.pdf")) or sorted((HERE.parent / "sample_docs").glob("*.pdf"))
    queries = [q["query"] for q in json.loads((HERE / "retrieval_queries.json").read_text())]
    settings = Settings()
    embedder = Embedder(settings.embedding_model)
    report = {
        "embedding_model": Path(settings.embedding_model).name,
        "pdfs": [p.name for p in pdfs],
    }
    if args.scale:
        report["scale"] = run_scale(args, pdfs, embedder)
        print(json.dumps(report, indent=2))
        return
    with tempfile.TemporaryDirectory() as folder:
        library = Library(Settings(library_dir=Path(folder)), embedder=embedder)
        report["ingest"] = measure_ingest(library, pdfs)
        report["text_layer"] = measure_text_layer(pdfs)
        rng = np.random.default_rng(0)
        report["search"] = []
        for size in sorted(args.sizes):
            grow_library(library, size, rng)
            report["search"].append(measure_search(library, queries, args.repeats))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
