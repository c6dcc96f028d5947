"""BM25 over chunk texts (bm25s, with Snowball stemming and English stopwords)."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def _tokenize(texts: list[str]):
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, show_progress=False)


CHUNK_IDS_FILE = "chunk_ids.json"


class LexicalIndex:
    """An immutable BM25 index over a list of chunk ids (its rows), saved to and loaded from a
    folder; a loaded index memory-maps its score matrix instead of reading it."""

    def __init__(self, chunk_ids: list[str], retriever: bm25s.BM25):
        self.chunk_ids = chunk_ids
        self.retriever = retriever

    @classmethod
    def build(cls, chunk_ids: list[str], texts: list[str]) -> LexicalIndex:
        retriever = bm25s.BM25()
        if texts:
            retriever.index(_tokenize(texts), show_progress=False)
        return cls(chunk_ids, retriever)

    def save(self, folder: Path) -> None:
        """Write the index into `folder` (created); an empty index is its empty list of ids."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.chunk_ids:
            self.retriever.save(folder, show_progress=False)
        (folder / CHUNK_IDS_FILE).write_text(json.dumps(self.chunk_ids), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """The index `save` wrote; raises OSError or ValueError when the folder does not hold
        a whole one."""
        chunk_ids = json.loads((folder / CHUNK_IDS_FILE).read_text(encoding="utf-8"))
        if not chunk_ids:
            return cls([], bm25s.BM25())
        retriever = bm25s.BM25.load(folder, mmap=True, show_progress=False, verbosity=0)
        if retriever.scores["num_docs"] != len(chunk_ids):
            raise ValueError(f"the BM25 index in {folder} does not match its chunk ids")
        return cls(chunk_ids, retriever)

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
