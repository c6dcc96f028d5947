"""Passage-level retrieval metrics: does a ranked list of page slices hold a question's answer?

A question's answer is a character span of one page (`file`, `page`, `start`, `end`), plus the
same text wherever else the library holds it (`also`: a page repeated in another file answers
the question as well). A hit answers a question when it covers at least half of one of those
spans: a chunk holding most of the answering sentence is the passage a reader needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MIN_COVER = 0.5  # share of the answer span a hit must cover to count as answering
EVIDENCE_BUDGET = 3000  # characters of evidence a section's prompt holds
SEPARATOR_CHARS = 2  # "\n\n" between two passages of the evidence


class Passage(Protocol):
    """What a search hit needs to be scored: where on which page it lies."""

    filename: str
    page_index: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Span:
    file: str
    page: int
    start: int
    end: int


def answer_spans(question: dict) -> list[Span]:
    """Every span that answers `question`: its own and the copies listed under `also`."""
    spans = [Span(question["file"], question["page"], question["start"], question["end"])]
    spans += [Span(s["file"], s["page"], s["start"], s["end"]) for s in question.get("also", [])]
    return spans


def _overlap(start: int, end: int, span: Span) -> int:
    return max(0, min(end, span.end) - max(start, span.start))


def cover(hit: Passage, span: Span) -> float:
    """The share of `span` that `hit` covers (0 when on another page)."""
    if hit.filename != span.file or hit.page_index != span.page:
        return 0.0
    return _overlap(hit.char_start, hit.char_end, span) / max(span.end - span.start, 1)


def answers(hit: Passage, spans: Sequence[Span]) -> bool:
    return any(cover(hit, span) >= MIN_COVER for span in spans)


def first_answering_rank(hits: Sequence[Passage], spans: Sequence[Span]) -> int | None:
    """The 1-based rank of the first hit that answers, or None."""
    return next((rank for rank, hit in enumerate(hits, 1) if answers(hit, spans)), None)


def within_budget(
    hits: Sequence[Passage], spans: Sequence[Span], budget: int = EVIDENCE_BUDGET
) -> bool:
    """Whether the hits' texts, concatenated best first and cut at `budget` characters, hold
    the whole of one answer span (pieces of it may come from overlapping hits)."""
    read: list[tuple[str, int, int, int]] = []  # (file, page, start, end) of what was read
    left = budget
    for hit in hits:
        if left <= 0:
            break
        length = min(hit.char_end - hit.char_start, left)
        read.append((hit.filename, hit.page_index, hit.char_start, hit.char_start + length))
        left -= length + SEPARATOR_CHARS
    return any(_wholly_read(read, span) for span in spans)


def _wholly_read(read: list[tuple[str, int, int, int]], span: Span) -> bool:
    pieces = sorted((s, e) for f, p, s, e in read if f == span.file and p == span.page)
    position = span.start
    for start, end in pieces:
        if start > position:
            break
        position = max(position, end)
        if position >= span.end:
            return True
    return position >= span.end


def summarise(ranks: Sequence[int | None], in_budget: Sequence[bool]) -> dict[str, float]:
    """Recall@1/5/10, MRR@10 and the share answered within the evidence budget."""
    count = max(len(ranks), 1)

    def recall(k: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= k) / count, 3)

    return {
        "recall@1": recall(1),
        "recall@5": recall(5),
        "recall@10": recall(10),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / count, 3),
        "in_budget": round(sum(in_budget) / count, 3),
    }
