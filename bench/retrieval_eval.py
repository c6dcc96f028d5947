"""Passage-level retrieval quality of every retrieval variant on bench/evalset, in one run.

    python bench/retrieval_eval.py [--library DIR] [--pdfs bench/evalset/pdfs]
                                   [--corpus ../shared/corpus] [--questions FILE]

Ingests the evaluation PDFs and the shared corpus (into DIR when given, kept for the next run;
else into a temporary folder), asks every question of bench/evalset/questions.json under each
variant and prints JSON: recall@1/5/10, MRR@10 and the share of questions whose answer span is
inside the first 3,000 characters of evidence (bench/retrieval_metrics.py), with the mean search
time per question (the machine's load included). Variants: dense only, BM25 only, hybrid rank
fusion with BM25 weighted 1 (the old default), 1.5 (the new one), 2 and 3; on top of hybrid,
near-duplicate passages collapsed, and the chunk matched read with its neighbours on the page;
and small-to-big parent-child retrieval (bench/small_to_big.py: pieces of 64 or 100 tokens
matched, the library chunk holding them read), whose pieces are embedded in this run.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import bm25s
import Stemmer
from retrieval_metrics import answer_spans, first_answering_rank, summarise, within_budget
from small_to_big import ChildIndex

from engine.config import DEFAULT_LEXICAL_WEIGHT, Settings
from engine.library import Library, SearchHit

HERE = Path(__file__).resolve().parent
K = 10
WEIGHTS = (1.0, 1.5, 2.0, 3.0)
NEAR_DUPLICATE = 0.8  # Jaccard similarity of word trigrams above which two passages are one
RERANKER_NOTE = (
    "not run: no PyPI package ships re-ranker weights (flashrank's wheel is 14 kB and fetches "
    "its cross-encoders from the Hugging Face hub, which this machine cannot reach)"
)

Search = Callable[[str], list[SearchHit]]


def shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(max(len(words) - 2, 1))}


def collapse_near_duplicates(hits: list[SearchHit]) -> list[SearchHit]:
    """The hits, best first, without any whose text nearly repeats a better one's."""
    kept: list[tuple[SearchHit, set]] = []
    for hit in hits:
        words = shingles(hit.text)
        if all(len(words & seen) / max(len(words | seen), 1) < NEAR_DUPLICATE for _, seen in kept):
            kept.append((hit, words))
    return [hit for hit, _ in kept]


def parent_windows(library: Library, hits: list[SearchHit]) -> list[SearchHit]:
    """Each hit widened to its neighbouring chunks on the page, skipping a hit already read as
    part of a better hit's window."""
    windows: list[SearchHit] = []
    for hit in hits:
        inside = any(
            w.doc_id == hit.doc_id
            and w.page_index == hit.page_index
            and w.char_start <= hit.char_start
            and hit.char_end <= w.char_end
            for w in windows
        )
        if not inside:
            windows.append(library.widen(hit))
    return windows


def variants(library: Library, child_tokens: tuple[int, ...]) -> Iterator[tuple[str, Search]]:
    """(name, search) for every variant; hybrid ones on a library view with that BM25 weight.
    Collapsing and neighbour reading are tried on the old weight (1) and the new default."""
    yield "dense", lambda q: library.search(q, k=K, mode="dense")
    yield "bm25", lambda q: library.search(q, k=K, mode="lexical")
    for weight in WEIGHTS:
        view = Library(replace(library.settings, lexical_weight=weight), library.embedder)
        name = f"hybrid bm25x{weight:g}"
        yield name, lambda q, v=view: v.search(q, k=K)
        if weight not in (1.0, DEFAULT_LEXICAL_WEIGHT):
            continue
        yield (
            f"{name} + near-duplicates collapsed",
            lambda q, v=view: collapse_near_duplicates(v.search(q, k=2 * K))[:K],
        )
        yield (
            f"{name} + chunk matched, neighbours read",
            lambda q, v=view: parent_windows(v, v.search(q, k=K)),
        )
    for tokens in child_tokens:
        children = ChildIndex(library, tokens)
        name = f"hybrid bm25x{DEFAULT_LEXICAL_WEIGHT:g} small-to-big: {tokens}-token pieces matched"
        yield (
            f"{name}, their chunk read",
            lambda q, c=children: c.search(q, K, DEFAULT_LEXICAL_WEIGHT),
        )


def evaluate(search: Search, questions: list[dict]) -> dict:
    ranks, in_budget, seconds = [], [], 0.0
    for question in questions:
        started = time.perf_counter()
        hits = search(question["question"])
        seconds += time.perf_counter() - started
        spans = answer_spans(question)
        ranks.append(first_answering_rank(hits, spans))
        in_budget.append(within_budget(hits, spans))
    report = summarise(ranks, in_budget)
    report["ms_per_query"] = round(1000 * seconds / max(len(questions), 1), 1)
    return report


_STEMMER = Stemmer.Stemmer("english")


def word_overlap(question: str, answer: str) -> float:
    """The share of the question's content words (stemmed, stopwords out) found in the answer:
    how far a question was paraphrased away from its page (lower is further)."""
    terms = bm25s.tokenize(
        [question, answer], stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )
    asked = set(terms[0])
    return len(asked & set(terms[1])) / max(len(asked), 1)


@contextmanager
def library_at(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        yield folder
        return
    with tempfile.TemporaryDirectory() as temporary:
        yield Path(temporary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--pdfs", type=Path, default=HERE / "evalset" / "pdfs")
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    parser.add_argument("--questions", type=Path, default=HERE / "evalset" / "questions.json")
    parser.add_argument("--child-tokens", type=int, nargs="*", default=[64, 100])
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    pdfs = sorted(args.pdfs.glob("*.pdf")) + sorted(args.corpus.glob("*.pdf"))
    with library_at(args.library) as folder:
        library = Library(Settings(library_dir=folder))
        started = time.perf_counter()
        present = {o.filename for o in library.ingest_many(pdfs) if o.readable}
        library.refresh_index()
        ingest_s = time.perf_counter() - started
        questions = [q for q in questions if q["file"] in present]
        overlap = sum(word_overlap(q["question"], q["answer"]) for q in questions)
        report = {
            "documents": len(present),
            "chunks": library.vectors.count(),
            "questions": len(questions),
            "mean_question_word_overlap": round(overlap / max(len(questions), 1), 3),
            "ingest_s": round(ingest_s, 1),
            "reranker": RERANKER_NOTE,
            "variants": {
                name: evaluate(search, questions)
                for name, search in variants(library, tuple(args.child_tokens))
            },
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
