"""The doc_ids filter over many documents, on a real Chroma store: every way the dense side
finds a selection's nearest chunks (exactly on stored vectors for a small one, among the
unfiltered neighbours for a large share, Chroma filtering by chunk ids in between) returns only
the selected documents, and chunks as near the query as scoring every selected one exactly
finds (the very same ones where it is exact)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import SAMPLE_DIR

from engine.catalog import READY
from engine.library import OVERFETCH_MAX, Library
from engine.vectors import EXACT_MAX

COPIES = 200
QUERY = "notice period for terminating the agreement for convenience"


@pytest.fixture(scope="module")
def many_documents(tmp_path_factory, embedder) -> tuple[Library, list[str]]:
    """The services agreement (19 chunks) and COPIES copies of it under their own document
    ids, each copy's vectors jittered a little (so no two chunks tie), stored as ingestion
    stores them."""
    from engine.config import Settings

    library = Library(
        Settings(library_dir=tmp_path_factory.mktemp("many-documents")), embedder=embedder
    )
    assert library.ingest(SAMPLE_DIR / "services-agreement.pdf").status == "added"
    chunks = library.catalog.ready_chunks()
    stored = library.vectors.vectors_of([c.chunk_id for c in chunks])
    vectors = np.stack([stored[c.chunk_id] for c in chunks])
    rng = np.random.default_rng(7)
    copies, all_vectors = [], []
    for copy in range(COPIES):
        doc_id = f"{copy:064x}"
        clones = [
            replace(c, chunk_id=f"{doc_id[-8:]}-{i}", doc_id=doc_id) for i, c in enumerate(chunks)
        ]
        library.catalog.add_pending(doc_id, f"copy-{copy}.pdf", 0, [], clones)
        jittered = vectors + rng.normal(0, 0.01, vectors.shape)
        all_vectors.append(jittered / np.linalg.norm(jittered, axis=1, keepdims=True))
        copies.extend(clones)
    library.vectors.add(copies, np.concatenate(all_vectors).astype(np.float32))
    for copy in range(COPIES):
        library.catalog.set_status(f"{copy:064x}", READY)
    return library, [d.doc_id for d in library.documents()]


def exact_scores(library: Library, doc_ids: list[str]) -> dict[str, float]:
    """The cosine similarity to the query of every chunk of the selected documents."""
    selected = set(doc_ids)
    chunk_ids = [c.chunk_id for c in library.catalog.ready_chunks() if c.doc_id in selected]
    stored = library.vectors.vectors_of(chunk_ids)
    query = library.embedder.embed([QUERY])[0]
    return {chunk_id: float(vector @ query) for chunk_id, vector in stored.items()}


def selection(documents: list[str], count: int) -> list[str]:
    rng = np.random.default_rng(count)
    return [documents[i] for i in sorted(rng.choice(len(documents), count, replace=False))]


@pytest.mark.parametrize("count", [1, 20, 150], ids=["exact", "chroma-ids", "overfetch"])
def test_a_selection_of_documents_finds_its_nearest_chunks_only(many_documents, count, monkeypatch):
    library, documents = many_documents
    chosen = selection(documents, count)
    asked = []  # how the dense side asked the vector store
    nearest, among = library.vectors.nearest, library.vectors.nearest_among

    def spy_nearest(vector, n, doc_ids=None):
        asked.append(("nearest", n, doc_ids))
        return nearest(vector, n, doc_ids)

    def spy_among(vector, n, chunk_ids):
        asked.append(("among", n, len(chunk_ids)))
        return among(vector, n, chunk_ids)

    monkeypatch.setattr(library.vectors, "nearest", spy_nearest)
    monkeypatch.setattr(library.vectors, "nearest_among", spy_among)
    dense = library.search(QUERY, k=5, doc_ids=chosen, mode="dense")
    exact = exact_scores(library, chosen)
    best = sorted(exact, key=lambda chunk_id: -exact[chunk_id])[:5]
    assert len(dense) == 5 and all(hit.chunk_id in exact for hit in dense)
    assert [hit.score for hit in dense] == pytest.approx(
        [exact[h.chunk_id] for h in dense], abs=1e-4
    )
    if count == 1:  # exact: the five best
        assert [hit.chunk_id for hit in dense] == best
    else:  # HNSW, approximate: near the best (200 copies of a chunk are near ties)
        assert min(hit.score for hit in dense) >= exact[best[-1]] - 0.03
    selected = sum(library.document(d).chunks for d in chosen)
    if count == 1:  # scored exactly on its stored vectors
        assert asked == [("among", 50, selected)] and selected <= EXACT_MAX
    elif count == 20:  # too small a share to look for among the neighbours: Chroma filters
        assert asked == [("among", 50, selected)] and selected > EXACT_MAX
    else:  # found among the unfiltered neighbours, Chroma never filtering
        assert len(asked) == 1 and asked[0][0] == "nearest" and asked[0][2] is None
        assert 50 < asked[0][1] <= OVERFETCH_MAX

    for mode in ("hybrid", "lexical"):
        hits = library.search(QUERY, k=10, doc_ids=chosen, mode=mode)
        assert len(hits) == 10 and {hit.doc_id for hit in hits} <= set(chosen)


def test_thousands_of_selected_ids_and_unknown_ones(many_documents):
    library, documents = many_documents
    unknown = [f"missing-{i}" for i in range(3000)]
    hits = library.search(QUERY, k=5, doc_ids=documents + unknown)
    assert len(hits) == 5 and {hit.doc_id for hit in hits} <= set(documents)
    assert library.search(QUERY, k=5, doc_ids=unknown) == []
