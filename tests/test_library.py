"""Ingest and hybrid search over the sample documents, on a real Chroma store and BM25 index."""

from __future__ import annotations

import json

import pypdf
import pytest
from conftest import SAMPLE_DIR, SAMPLE_PDFS

from engine.config import Settings
from engine.library import Library

QUERIES = json.loads((SAMPLE_DIR.parent / "bench" / "sample_queries.json").read_text())


def test_every_sample_is_added_with_its_pages_and_labels(sample_library):
    records = {r.filename: r for r in sample_library.documents()}
    assert set(records) == {p.name for p in SAMPLE_PDFS}
    for path in SAMPLE_PDFS:
        record = records[path.name]
        reader = pypdf.PdfReader(path)
        assert record.pages == len(reader.pages)
        labels = [sample_library.page(record.doc_id, i).page_label for i in range(record.pages)]
        assert labels == list(reader.page_labels)
        assert record.chunks == sample_library.vectors.count(record.doc_id) > 0


def test_services_agreement_keeps_roman_cover_label(sample_library):
    record = next(r for r in sample_library.documents() if r.filename == "services-agreement.pdf")
    assert sample_library.page(record.doc_id, 0).page_label == "i"
    assert sample_library.page(record.doc_id, 1).page_label == "1"


@pytest.mark.parametrize("query", QUERIES, ids=[q["query"][:40] for q in QUERIES])
def test_labelled_query_finds_its_page_in_the_top_five(sample_library, query):
    hits = sample_library.search(query["query"], k=5)
    found = [(h.filename, h.page_index) for h in hits]
    assert any(f == query["file"] and p in query["pages"] for f, p in found), found


def test_hits_are_exact_slices_of_their_pages(sample_library):
    hits = sample_library.search("termination for convenience notice period", k=8)
    assert len(hits) == 8
    for hit in hits:
        page = sample_library.page(hit.doc_id, hit.page_index)
        assert page.text[hit.char_start : hit.char_end] == hit.text
        assert hit.page_label == page.page_label
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_can_be_limited_to_documents(sample_library):
    nda = next(r for r in sample_library.documents() if r.filename == "nda.pdf")
    act = next(r for r in sample_library.documents() if r.filename == "data-protection-act.pdf")
    for mode in ("hybrid", "dense", "lexical"):
        hits = sample_library.search(
            "obligations of the parties", k=5, doc_ids=[nda.doc_id], mode=mode
        )
        assert hits and {h.doc_id for h in hits} == {nda.doc_id}
    both = sample_library.search("confidential", k=20, doc_ids=[nda.doc_id, act.doc_id])
    assert {h.doc_id for h in both} <= {nda.doc_id, act.doc_id}
    assert sample_library.search("confidential", k=5, doc_ids=["no-such-document"]) == []


def test_searching_many_queries_at_once_equals_searching_each(sample_library):
    nda = next(d.doc_id for d in sample_library.documents() if d.filename == "nda.pdf")
    queries = ["notice period for termination", "", "confidential information", "security"]
    filters = [None, None, [nda], [nda, "no-such-document"]]
    together = sample_library.search_many(queries, k=4, doc_ids=filters)
    alone = [
        sample_library.search(q, k=4, doc_ids=f) for q, f in zip(queries, filters, strict=True)
    ]
    assert [[h.chunk_id for h in hits] for hits in together] == [
        [h.chunk_id for h in hits] for hits in alone
    ]
    assert together[1] == [] and all(together[i] for i in (0, 2, 3))
    assert {h.doc_id for h in together[2] + together[3]} == {nda}


def test_empty_query_returns_nothing(sample_library):
    assert sample_library.search("   ", k=5) == []


def test_a_hit_widens_to_its_neighbours_on_the_same_page(sample_library):
    hit = max(
        sample_library.search("limitation of liability cap", k=10),
        key=lambda h: len(sample_library.catalog.page_chunks(h.doc_id, h.page_index)),
    )
    siblings = sample_library.catalog.page_chunks(hit.doc_id, hit.page_index)
    assert len(siblings) >= 2
    wide = sample_library.widen(hit)
    page = sample_library.page(hit.doc_id, hit.page_index)
    assert wide.char_start <= hit.char_start and wide.char_end >= hit.char_end
    assert (wide.char_start, wide.char_end) != (hit.char_start, hit.char_end)
    assert page.text[wide.char_start : wide.char_end] == wide.text
    assert hit.text in wide.text


def test_reuploading_the_same_bytes_is_a_duplicate_noop(library):
    path = SAMPLE_DIR / "nda.pdf"
    first = library.ingest(path)
    second = library.ingest(path, filename="renamed-copy.pdf")
    assert (first.status, second.status) == ("added", "duplicate")
    assert second.doc_id == first.doc_id and "nda.pdf" in second.message
    assert len(library.documents()) == 1
    assert library.vectors.count() == first.chunks


def test_delete_removes_the_document_from_every_store(library):
    kept = library.ingest(SAMPLE_DIR / "nda.pdf")
    gone = library.ingest(SAMPLE_DIR / "services-agreement.pdf")
    assert library.search("invoices payable within thirty days", k=1)[0].doc_id == gone.doc_id
    assert library.delete(gone.doc_id)
    assert [r.doc_id for r in library.documents()] == [kept.doc_id]
    assert library.vectors.count() == kept.chunks
    assert not library.pdf_path(gone.doc_id).exists()
    assert all(h.doc_id == kept.doc_id for h in library.search("invoices payable", k=10))
    assert not library.delete(gone.doc_id)
    again = library.ingest(SAMPLE_DIR / "services-agreement.pdf")
    assert again.status == "added"


def test_a_reopened_library_finds_what_was_stored(library, embedder):
    library.ingest(SAMPLE_DIR / "data-protection-act.pdf")
    reopened = Library(Settings(library_dir=library.root), embedder=embedder)
    assert [r.filename for r in reopened.documents()] == ["data-protection-act.pdf"]
    assert reopened.search("subject access request", k=1)[0].filename == "data-protection-act.pdf"


def test_recovery_removes_a_document_left_pending_by_a_dead_process(library):
    outcome = library.ingest(SAMPLE_DIR / "nda.pdf")
    dead_pid = 2**22 + 7  # above the kernel's pid_max: no such process
    with library.catalog.connect() as db:
        db.execute("UPDATE documents SET status = 'pending', owner_pid = ?", (dead_pid,))
    (library.files_dir / ".stale.123.tmp").write_bytes(b"partial copy")
    assert library.recover() == [outcome.doc_id]
    assert library.documents() == [] and library.vectors.count() == 0
    assert list(library.files_dir.iterdir()) == []
