"""Where a section's text comes from, kept with the draft so nothing is recomputed to show it.

Two different things, shown apart because they answer different questions:
- what the model *read*: the passages a section was conditioned on, round by round (retrieval is
  refreshed from the draft as it forms, so later rounds can read other passages);
- what *supports* the text: the sentence-level citations of its current text, computed once when
  the text changes (a run finishes, the user edits) and stored with the text they describe, so a
  stale set is recognised by comparing texts, never by recomputing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from engine.attribution import (
    SentenceSupport,
    attribute_sentences,
    sentences_from_records,
    sentences_to_records,
)
from engine.search_hit import SearchHit

if TYPE_CHECKING:  # only in annotations: reading a stored draft needs no stores
    from engine.library import Library

MAX_READ_ROUNDS = 16  # a long run keeps its first round and the latest ones


@dataclass(frozen=True)
class ReadSource:
    """A passage a section was conditioned on: where it is (its text is in the catalog, and
    in `Block.evidence` for the current round)."""

    chunk_id: str
    doc_id: str
    filename: str
    page_index: int
    page_label: str

    @classmethod
    def of(cls, hit: SearchHit) -> ReadSource:
        return cls(hit.chunk_id, hit.doc_id, hit.filename, hit.page_index, hit.page_label)


@dataclass(frozen=True)
class ReadRound:
    step: int  # the draft's step counter when the section read these (before that step ran)
    sources: list[ReadSource]

    def to_json(self) -> dict:
        return {"step": self.step, "sources": [asdict(s) for s in self.sources]}

    @classmethod
    def from_json(cls, data: dict) -> ReadRound:
        return cls(data["step"], [ReadSource(**s) for s in data["sources"]])


def with_round(rounds: list[ReadRound], step: int, hits: list[SearchHit]) -> list[ReadRound]:
    """`rounds` with what was just retrieved appended, unless it is what the last round read;
    at most `MAX_READ_ROUNDS`, the first one always kept."""
    sources = [ReadSource.of(hit) for hit in hits]
    if rounds and rounds[-1].sources == sources:
        return rounds
    kept = [*rounds, ReadRound(step, sources)]
    if len(kept) > MAX_READ_ROUNDS:
        kept = [kept[0], *kept[-(MAX_READ_ROUNDS - 1) :]]
    return kept


@dataclass(frozen=True)
class Citations:
    """The sentence-level attribution of one text of a section."""

    text: str  # the text it was computed for: stale as soon as the section's text differs
    sentences: list[SentenceSupport]

    def supports(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if s.supported]

    def to_json(self) -> dict:
        return {"text": self.text, "sentences": sentences_to_records(self.sentences)}

    @classmethod
    def from_json(cls, data: dict) -> Citations:
        return cls(data["text"], sentences_from_records(data["sentences"]))


def current_citations(
    library: Library, text: str, targets: list[str], stored: Citations | None
) -> Citations:
    """The citations of `text`: `stored` when they were computed for this very text (attribution
    runs once per text), else attributed now within the `targets` documents (none: all)."""
    if stored is not None and stored.text == text:
        return stored
    return Citations(text, attribute_sentences(library, text, doc_ids=targets or None))
