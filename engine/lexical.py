"""BM25 over chunk texts (bm25s, with Snowball stemming and English stopwords)."""

from __future__ import annotations

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def _tokenize(texts: list[str]):
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, show_progress=False)


class LexicalIndex:
    """An immutable BM25 index over a list of chunk ids and texts."""

    def __init__(self, chunk_ids: list[str], texts: list[str]):
        self.chunk_ids = chunk_ids
        self.retriever = bm25s.BM25()
        if texts:
            self.retriever.index(_tokenize(texts), show_progress=False)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def scores(self, query: str, allowed_rows: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every chunk for `query` (0 where `allowed_rows` excludes it)."""
        if not self.chunk_ids:
            return np.zeros(0, dtype=np.float32)
        terms = bm25s.tokenize(
            [query], stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
        )[0]
        known = [term for term in terms if term in self.retriever.vocab_dict]
        if not known:
            return np.zeros(len(self.chunk_ids), dtype=np.float32)
        weight_mask = None
        if allowed_rows is not None:
            weight_mask = np.zeros(len(self.chunk_ids), dtype=np.float32)
            weight_mask[allowed_rows] = 1.0
        return self.retriever.get_scores(known, weight_mask=weight_mask)

    def top(
        self, query: str, k: int, allowed_rows: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """The `k` best (chunk_id, score) pairs with a positive score, best first."""
        scores = self.scores(query, allowed_rows)
        if scores.size == 0:
            return []
        k = min(k, scores.size)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.chunk_ids[row], float(scores[row])) for row in best if scores[row] > 0]
