"""Parent-child retrieval with small children: match pieces of about 64 tokens, read the library's
own chunk (about 200 tokens) that holds the best pieces.

The children live only in memory, for the benchmark: their vectors in a numpy matrix (exact
cosine) and their BM25 index built with `engine.lexical`, fused as hybrid search fuses chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.chunking import Chunk, split_page
from engine.fusion import reciprocal_rank_fusion
from engine.lexical import LexicalIndex
from engine.library import Library, SearchHit

CHILD_TOKENS = 64
CANDIDATES = 100  # children taken from each ranking before fusion


@dataclass(frozen=True)
class Child:
    parent: Chunk
    filename: str


class ChildIndex:
    """Small pieces of every ready page, each pointing at the library chunk that holds it."""

    def __init__(self, library: Library, max_tokens: int = CHILD_TOKENS):
        self.library = library
        children: list[Child] = []
        texts: list[str] = []
        for record in library.documents():
            for index in range(record.pages):
                page = library.page(record.doc_id, index)
                parents = library.catalog.page_chunks(record.doc_id, index)
                if page is None or not parents:
                    continue
                spans = split_page(
                    page.text,
                    library.embedder.token_offsets,
                    max_tokens=max_tokens,
                    max_overlap_tokens=max_tokens // 4,
                    min_tokens=max_tokens // 4,
                )
                for start, end in spans:
                    children.append(Child(_parent(parents, start, end), record.filename))
                    texts.append(page.text[start:end])
        self.children = children
        self.vectors = library.embedder.embed(texts)
        self.lexical = LexicalIndex.build([str(i) for i in range(len(texts))], texts)

    def search(self, query: str, k: int, lexical_weight: float) -> list[SearchHit]:
        """The `k` parents of the best-ranked children, best first, each once."""
        similarity = self.vectors @ self.library.embedder.embed([query])[0]
        dense = [str(i) for i in np.argsort(-similarity)[:CANDIDATES]]
        lexical = [cid for cid, _ in self.lexical.top(query, CANDIDATES)]
        fused = reciprocal_rank_fusion([dense, lexical], weights=[1.0, lexical_weight])
        hits: dict[str, SearchHit] = {}
        for child_id, score in fused:
            child = self.children[int(child_id)]
            parent = child.parent
            if parent.chunk_id not in hits:
                hits[parent.chunk_id] = SearchHit(
                    parent.chunk_id,
                    parent.doc_id,
                    child.filename,
                    parent.page_index,
                    parent.page_label,
                    parent.char_start,
                    parent.char_end,
                    score,
                    parent.text,
                )
            if len(hits) == k:
                break
        return list(hits.values())


def _parent(parents: list[Chunk], start: int, end: int) -> Chunk:
    """The chunk that overlaps the child's span most (the one holding it, where one does)."""
    return max(parents, key=lambda c: min(c.char_end, end) - max(c.char_start, start))
