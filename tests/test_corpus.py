"""Ingestion and retrieval on real-world PDFs (../shared/corpus); skipped when it is absent."""

from __future__ import annotations

import json

import pypdf
import pytest
from conftest import CORPUS_DIR, REPO_ROOT, requires_corpus

from engine.config import Settings
from engine.library import Library

pytestmark = [requires_corpus, pytest.mark.corpus]

QUERIES = json.loads((REPO_ROOT / "bench" / "retrieval_queries.json").read_text())


@pytest.fixture(scope="module")
def corpus_library(tmp_path_factory, embedder) -> Library:
    library = Library(Settings(library_dir=tmp_path_factory.mktemp("corpus")), embedder=embedder)
    outcomes = list(library.ingest_many(sorted(CORPUS_DIR.glob("*.pdf"))))
    assert all(o.status == "added" for o in outcomes), [o.line() for o in outcomes]
    return library


def test_every_page_and_label_is_kept(corpus_library):
    for record in corpus_library.documents():
        reader = pypdf.PdfReader(CORPUS_DIR / record.filename)
        assert record.pages == len(reader.pages)
        assert record.empty_pages == 0
        labels = [corpus_library.page(record.doc_id, i).page_label for i in range(record.pages)]
        assert labels == list(reader.page_labels)
        chunks = corpus_library.catalog.page_chunks(record.doc_id, record.pages // 2)
        page = corpus_library.page(record.doc_id, record.pages // 2)
        assert chunks and all(page.text[c.char_start : c.char_end] == c.text for c in chunks)


def test_hybrid_recall_at_5_on_the_labelled_queries(corpus_library):
    """A quality floor, well under what bench/retrieval.py measures (0.95), to catch regressions."""
    answered = 0
    for query in QUERIES:
        hits = corpus_library.search(query["query"], k=5)
        answered += any(
            h.filename == query["file"] and h.page_index in query["pages"] for h in hits
        )
    assert answered / len(QUERIES) >= 0.8


def test_evidence_quotes_are_found_on_their_labelled_pages(corpus_library):
    """The stored page text is what a citation quotes: the labelled quotes must be in it."""
    by_name = {r.filename: r for r in corpus_library.documents()}
    for query in QUERIES:
        record = by_name[query["file"]]
        quote = " ".join(query["evidence"].split())
        pages = [
            " ".join(corpus_library.page(record.doc_id, i).text.split()) for i in query["pages"]
        ]
        assert any(quote in text for text in pages), query["query"]


def test_patent_claims_are_searchable_within_the_patent(corpus_library):
    patent = next(r for r in corpus_library.documents() if r.filename.startswith("us-patent"))
    hits = corpus_library.search("refresh rate is zero", k=3, doc_ids=[patent.doc_id])
    assert hits and all(h.doc_id == patent.doc_id for h in hits)
