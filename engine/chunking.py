"""Pages -> chunks sized for the embedding model, split at sentence boundaries.

A table (a Markdown table in the page text, engine/layout.py) is a chunk of its own, so a query
on one cell finds the whole table; one too long for a chunk is cut between its rows.

A chunk never crosses a page and is an exact slice of its page's text
(`page.text[chunk.char_start:chunk.char_end] == chunk.text`), so a citation can always be found
again. Consecutive chunks share their boundary sentence (a small overlap) when it is short, so a
statement that straddles two chunks is whole in at least one of them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.documents import Page

# Offsets (start, end) of each token of a text, special tokens excluded.
TokenOffsets = Callable[[str], list[tuple[int, int]]]

MAX_CHUNK_TOKENS = 200  # the embedding model reads 256 tokens; leave room for specials
# 200 tokens of real text are at most ~1,200 characters; this bound only bites on text whose
# "words" are thousands of characters long (a base64 blob, a run of one letter), which a WordPiece
# tokenizer reads as one unknown token: without it such a page would be one giant chunk.
MAX_CHUNK_CHARS = 2000
MAX_OVERLAP_TOKENS = 48
MIN_CHUNK_TOKENS = 48

# A sentence ends at . ! ? (with closing quotes/brackets) before whitespace, or at a blank line,
# but not after an enumerator ("1.", "(b).", "iv.") or a common abbreviation ("e.g.", "No.").
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*\n")
_NOT_AN_END = re.compile(
    r"(?:(?:^|\n)[ \t]*(?:\d+(?:\.\d+)*|[a-z]|[ivxlc]+)"  # an enumerator opening a line
    r"|(?:^|[\s(])(?:e\.g|i\.e|etc|cf|al|vs|no|nos|art|arts|sec|secs|para|paras|fig|figs|eq|eqs"
    r"|ch|p|pp|vol|dr|mr|mrs|ms|prof|st|inc|ltd|co|corp))\.$",
    re.IGNORECASE,
)


# A Markdown table: a header row, its `| --- |` rule, and the rows under it, each a line that
# starts and ends with "|".
_TABLE = re.compile(r"^\|[^\n]*\|\n\|(?: ?:?-{3,}:? ?\|)+(?:\n\|[^\n]*\|)*$", re.MULTILINE)


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    page_index: int
    page_label: str
    ordinal: int  # position among the chunks of its page: neighbours are ordinal +- 1
    char_start: int
    char_end: int
    text: str


def chunk_id_for(doc_id: str, page_index: int, ordinal: int) -> str:
    return f"{doc_id[:16]}-p{page_index}-c{ordinal}"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of `text`, surrounding whitespace excluded."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.group().strip() == "" and _NOT_AN_END.search(
            text, max(0, match.start() - 12), match.start()
        ):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [span for span in (_strip(text, s, e) for s, e in spans) if span[0] < span[1]]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


class _TokenCounter:
    """Counts the tokens of any slice of one text from a single tokenisation of the whole."""

    def __init__(self, text: str, offsets: list[tuple[int, int]]):
        self.text = text
        self.starts = [start for start, end in offsets if end > start]

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def cut_point(self, start: int, end: int, budget: int) -> int:
        """The furthest position in (start, end) keeping at most `budget` tokens, at a word start
        when there is one."""
        first = bisect.bisect_left(self.starts, start)
        limit = first + budget
        if limit >= len(self.starts) or self.starts[limit] >= end:
            return end
        for index in range(limit, first, -1):
            position = self.starts[index]
            if self.text[position - 1].isspace():
                return position
        return self.starts[limit]


def _pieces(counter: _TokenCounter, spans: list[tuple[int, int]], budget: int, max_chars: int):
    """Sentence spans, with any sentence over the token budget or `max_chars` cut into pieces
    that fit."""
    for start, end in spans:
        while counter.count(start, end) > budget:
            cut = counter.cut_point(start, end, budget)
            yield from _char_bounded(counter.text, *_strip(counter.text, start, cut), max_chars)
            start = _strip(counter.text, cut, end)[0]
        yield from _char_bounded(counter.text, start, end, max_chars)


def _char_bounded(text: str, start: int, end: int, max_chars: int):
    """The span cut into near-equal parts of at most `max_chars`, at whitespace when possible.

    Parts are never shorter than about `max_chars / 2`, so a part cut out of one huge "word" is
    itself too long for the tokenizer to split into many pieces: it stays one unknown token.
    """
    while end - start > max_chars:
        parts = -(-(end - start) // max_chars)
        target = start + -(-(end - start) // parts)
        space = max(text.rfind(" ", start, target + 1), text.rfind("\n", start, target + 1))
        cut = space if space > start + max_chars // 2 else target
        piece = _strip(text, start, cut)
        if piece[0] < piece[1]:
            yield piece
        start = _strip(text, cut, end)[0]
    if start < end:
        yield start, end


def split_page(
    text: str,
    token_offsets: TokenOffsets,
    max_tokens: int = MAX_CHUNK_TOKENS,
    max_overlap_tokens: int = MAX_OVERLAP_TOKENS,
    min_tokens: int = MIN_CHUNK_TOKENS,
    max_chars: int = MAX_CHUNK_CHARS,
) -> list[tuple[int, int]]:
    """Character spans of the chunks of one page's text: its tables' chunks (`table_spans`)
    among the chunks of the prose around them."""
    counter = _TokenCounter(text, token_offsets(text))
    bounds = _Bounds(counter, max_tokens, max_chars)
    chunks: list[tuple[int, int]] = []
    position = 0
    for start, end in [*table_spans(text), (len(text), len(text))]:
        sentences = [(a + position, b + position) for a, b in sentence_spans(text[position:start])]
        chunks += _prose_chunks(bounds, sentences, max_overlap_tokens, min_tokens)
        if end > start:
            chunks += _table_chunks(bounds, start, end)
        position = end
    return chunks


def table_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the Markdown tables in a page's text (engine/layout.py writes them)."""
    return [match.span() for match in _TABLE.finditer(text)]


@dataclass(frozen=True)
class _Bounds:
    """How much one chunk may hold, measured on one tokenisation of the page."""

    counter: _TokenCounter
    max_tokens: int
    max_chars: int

    def fits(self, start: int, end: int) -> bool:
        return end - start <= self.max_chars and self.counter.count(start, end) <= self.max_tokens

    def pieces(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return list(_pieces(self.counter, spans, self.max_tokens, self.max_chars))


def _table_chunks(bounds: _Bounds, start: int, end: int) -> list[tuple[int, int]]:
    """A table as one chunk when it fits, else cut between rows into chunks that fit."""
    if bounds.fits(start, end):
        return [(start, end)]
    rows, position = [], start
    for line in bounds.counter.text[start:end].split("\n"):
        rows.append((position, position + len(line)))
        position += len(line) + 1
    chunks: list[tuple[int, int]] = []
    for piece in bounds.pieces(rows):
        if chunks and bounds.fits(chunks[-1][0], piece[1]):
            chunks[-1] = (chunks[-1][0], piece[1])
        else:
            chunks.append(piece)
    return chunks


def _prose_chunks(
    bounds: _Bounds, sentences: list[tuple[int, int]], max_overlap_tokens: int, min_tokens: int
) -> list[tuple[int, int]]:
    """Sentences grouped into chunks that fit, neighbours sharing a short boundary sentence."""
    pieces = bounds.pieces(sentences)
    counter, fits = bounds.counter, bounds.fits
    groups: list[tuple[int, int]] = []  # (first piece, last piece) of each chunk
    first = 0
    while first < len(pieces):
        last = first
        start = pieces[first][0]
        while last + 1 < len(pieces) and fits(start, pieces[last + 1][1]):
            last += 1
        groups.append((first, last))
        more_to_come = last + 1 < len(pieces)
        overlap = more_to_come and last > first
        overlap = overlap and counter.count(*pieces[last]) <= max_overlap_tokens
        first = last if overlap else last + 1
    if len(groups) > 1:
        # A short tail (a footer, a page number) reaches back into its predecessor's sentences
        # rather than standing alone as a chunk too small to retrieve well.
        first, last = groups[-1]
        end = pieces[last][1]
        while (
            first > 0
            and counter.count(pieces[first][0], end) < min_tokens
            and fits(pieces[first - 1][0], end)
        ):
            first -= 1
        groups[-1] = (first, last)
    return [(pieces[first][0], pieces[last][1]) for first, last in groups]


def chunk_pages(
    doc_id: str,
    pages: list[Page],
    token_offsets: TokenOffsets,
    max_tokens: int = MAX_CHUNK_TOKENS,
) -> list[Chunk]:
    chunks = []
    for page in pages:
        spans = split_page(page.text, token_offsets, max_tokens)
        for ordinal, (start, end) in enumerate(spans):
            chunks.append(
                Chunk(
                    chunk_id=chunk_id_for(doc_id, page.page_index, ordinal),
                    doc_id=doc_id,
                    page_index=page.page_index,
                    page_label=page.page_label,
                    ordinal=ordinal,
                    char_start=start,
                    char_end=end,
                    text=page.text[start:end],
                )
            )
    return chunks
