"""Retrieval quality of dense, BM25 and hybrid search on a labelled query set.

    python bench/retrieval.py [--corpus ../shared/corpus] [--queries bench/retrieval_queries.json]

Prints JSON: Recall@5 and MRR@10 per search mode, overall and per file. A query counts as
answered at rank r when the r-th hit is from the labelled file and one of its labelled pages.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from engine.config import Settings
from engine.library import SEARCH_MODES, Library

HERE = Path(__file__).resolve().parent


def first_correct_rank(hits, query: dict) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        if hit.filename == query["file"] and hit.page_index in query["pages"]:
            return rank
    return None


def evaluate(library: Library, queries: list[dict], mode: str) -> dict:
    ranks = [first_correct_rank(library.search(q["query"], k=10, mode=mode), q) for q in queries]
    recall5 = sum(1 for r in ranks if r is not None and r <= 5) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    return {"recall@5": round(recall5, 3), "mrr@10": round(mrr, 3), "queries": len(ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    parser.add_argument("--samples", type=Path, default=HERE.parent / "sample_docs")
    parser.add_argument(
        "--queries", type=Path, nargs="+", default=sorted(HERE.glob("*queries.json"))
    )
    args = parser.parse_args()
    queries = [q for path in args.queries for q in json.loads(path.read_text())]
    pdfs = sorted(args.corpus.glob("*.pdf")) + sorted(args.samples.glob("*.pdf"))
    with tempfile.TemporaryDirectory() as folder:
        library = Library(Settings(library_dir=Path(folder)))
        started = time.perf_counter()
        present = {outcome.filename for outcome in library.ingest_many(pdfs) if outcome.readable}
        ingest_s = time.perf_counter() - started
        queries = [q for q in queries if q["file"] in present]
        files = sorted({q["file"] for q in queries})
        report = {"ingest_s": round(ingest_s, 1), "files": files, "modes": {}}
        for mode in SEARCH_MODES:
            overall = evaluate(library, queries, mode)
            overall["per_file"] = {
                name: evaluate(library, [q for q in queries if q["file"] == name], mode)
                for name in files
            }
            report["modes"][mode] = overall
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
