"""Which library passages support a piece of text, and which spans of each match it.

Works on any text (a drafted block, a sentence the user typed): candidates come from hybrid
search with the text as the query; each is scored by the cosine similarity of its stored vector to
the text's embedding and by how much of the text it covers word for word. Matched spans are runs
of at least `MIN_SPAN_WORDS` identical words (case-insensitive), reported as character ranges in
the text and in the chunk's page, so a citation can be highlighted on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from engine.library import Library, SearchHit

MIN_SPAN_WORDS = 3
DENSE_WEIGHT = 0.5  # support = 0.5 * cosine similarity + 0.5 * share of the text matched verbatim
_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass(frozen=True)
class MatchedSpan:
    text_start: int  # in the attributed text
    text_end: int
    page_start: int  # in the page text of the supporting chunk
    page_end: int


@dataclass(frozen=True)
class Support:
    hit: SearchHit
    support: float
    spans: list[MatchedSpan]

    def quotes(self) -> list[str]:
        """The matched passages, as they read in the source."""
        offset = self.hit.char_start
        return [self.hit.text[s.page_start - offset : s.page_end - offset] for s in self.spans]

    def to_json(self) -> dict:
        return {
            **self.hit.to_json(),
            "support": round(self.support, 4),
            "spans": [
                {"text": [s.text_start, s.text_end], "chunk": [s.page_start, s.page_end]}
                for s in self.spans
            ],
        }


def _words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    matches = list(_WORD.finditer(text))
    return [m.group().lower() for m in matches], [m.span() for m in matches]


def matched_spans(text: str, chunk_text: str, min_words: int = MIN_SPAN_WORDS):
    """Runs of identical words shared by `text` and `chunk_text`, as character ranges in each."""
    words_a, spans_a = _words(text)
    words_b, spans_b = _words(chunk_text)
    matcher = SequenceMatcher(None, words_a, words_b, autojunk=False)
    return [
        (spans_a[a][0], spans_a[a + size - 1][1], spans_b[b][0], spans_b[b + size - 1][1])
        for a, b, size in matcher.get_matching_blocks()
        if size >= min_words
    ]


def attribute(
    library: Library, text: str, k: int = 3, doc_ids: list[str] | None = None
) -> list[Support]:
    """The `k` passages that best support `text`, strongest first."""
    if not text.strip():
        return []
    candidates = library.search(text, k=max(3 * k, 10), doc_ids=doc_ids)
    if not candidates:
        return []
    query = library.embedder.embed_query(text)
    stored = library.vectors.vectors_of([hit.chunk_id for hit in candidates])
    supports = []
    for hit in candidates:
        vector = stored.get(hit.chunk_id)
        similarity = float(np.dot(query, vector)) if vector is not None else 0.0
        spans = [
            MatchedSpan(a0, a1, hit.char_start + b0, hit.char_start + b1)
            for a0, a1, b0, b1 in matched_spans(text, hit.text)
        ]
        covered = sum(span.text_end - span.text_start for span in spans) / len(text.strip())
        score = DENSE_WEIGHT * max(similarity, 0.0) + (1 - DENSE_WEIGHT) * min(covered, 1.0)
        supports.append(Support(hit, score, spans))
    supports.sort(key=lambda s: -s.support)
    return supports[:k]
