"""A text-layer PDF page -> its lines in the order a person reads them, tables as Markdown.

PDFium gives a page's characters in content-stream order, which for many two-column files
(patents above all) runs across both columns: a line of the left column, then the line of the
right column beside it. So the page is laid out again from PDFium's character boxes:

- Characters become runs: consecutive characters on one line with no gap wider than `GAP`
  line heights and no vertical rule between them, so a column gutter, a patent's line numbers
  in it, and a table's cell gaps all end a run. A run is a range of PDFium's characters, so
  every character of the page text still knows its box (for highlighting).
- Runs framed by rules, or aligned in columns, become tables (engine/tables.py), each read as
  one block; the rest are read column by column, row by row (engine/reading_order.py).
- Runs in the top and bottom `MARGIN` of the page are lines of their own, marked as margin
  lines: running headers, footers and page numbers are found among them across the document
  (engine/running_heads.py) and left out of the page text.
- Rotated characters (an arXiv stamp up the margin) are read last, in PDFium's order. A page
  whose text is mostly rotated (a landscape page turned by its content) keeps PDFium's order.

Costs: each character's box and angle are two PDFium calls and some Python: the corpus reads at
about 70 text pages a second on this machine (`text_layer` in bench/ingest.py), where the bare
text reads at about 600; 2.5 s of an ingest of the corpus, which embedding dominates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from engine.reading_order import Box, regions, rows
from engine.rules import Rule, Rules, page_rules
from engine.tables import Table, aligned_tables, ruled_tables

GAP = 0.8  # line heights (a loose box is ~1.2 em high): wider gaps end a run
MARGIN = 0.1  # of the page height, at top and at bottom: where running heads and folios sit
MIN_GUTTER = 6.0  # points: a narrower strip without letters is a word space, not a gutter
MIN_GUTTER_LETTERS = 200  # fewer letters than this cannot show a gutter
GUTTER_COVERAGE = 0.1  # of the coverage of the busiest x: a strip crossed by a title or two
NUMBER_SPACE = 0.15  # line heights: a line number in a gutter stands at least this far apart
UPRIGHT = 0.02  # radians: characters turned more than this are rotated text
HYPHEN = "\ufffe"  # PDFium's mark for a word hyphenated at a line end (it already joins them)
TOP, BOTTOM = "top", "bottom"

# A piece of a line: a range [start, end) of PDFium's characters, or text the layout adds.
Piece = tuple[int, int] | str


@dataclass(frozen=True)
class Line:
    """One line of the page text: its pieces, their text, and whether it sits in a margin."""

    pieces: tuple[Piece, ...]
    text: str
    margin: str | None = None  # TOP or BOTTOM: a candidate running head, footer or folio
    inset: float = 0.0  # a margin line's distance from its edge of the page, in page heights
    table: bool = False  # a row of a Markdown table


def lines_text(lines: Iterable[Line], keep: Callable[[Line], bool] = lambda line: True) -> str:
    """The page text of the kept lines, a newline apart (none after a hyphenated word)."""
    return "".join(text for text, _ in _joined(lines, keep, lambda line: [(line.text, -1)]))


def _joined(
    lines: Iterable[Line],
    keep: Callable[[Line], bool],
    parts: Callable[[Line], Iterable[tuple[str, int]]],
) -> Iterator[tuple[str, int]]:
    """The kept lines' parts, a newline between lines unless one ends in a hyphenated word (and
    neither is a table's row: a table's rows are whole lines)."""
    previous: Line | None = None
    for line in lines:
        if not keep(line):
            continue
        if previous is not None:
            hyphenated = previous.text.endswith(HYPHEN) and not (previous.table or line.table)
            if not hyphenated:
                yield "\n", -1
        previous = line
        yield from parts(line)


@dataclass(frozen=True)
class PageLayout:
    """A page's lines in reading order, and the text of each of PDFium's characters."""

    lines: tuple[Line, ...]
    chars: tuple[str, ...]

    def text_with_origins(self) -> tuple[str, list[int]]:
        """The page text with every line kept, and each character's PDFium index (-1 for the
        separators and Markdown the layout added)."""
        text: list[str] = []
        origins: list[int] = []
        for piece_text, origin in _joined(self.lines, lambda line: True, self._characters):
            text.append(piece_text)
            origins += [origin] * len(piece_text)
        return "".join(text), origins

    def _characters(self, line: Line) -> Iterator[tuple[str, int]]:
        for piece in line.pieces:
            if isinstance(piece, str):
                yield piece, -1
            else:
                yield from ((self.chars[index], index) for index in range(*piece))


@dataclass
class _Run:
    """A run of characters being read: PDFium range and box (top-down coordinates)."""

    start: int
    end: int
    left: float
    right: float
    top: float
    bottom: float
    turned: bool
    side: int

    @classmethod
    def of(cls, char: _Char) -> _Run:
        return cls(
            char.index,
            char.index + 1,
            char.left,
            char.right,
            char.top,
            char.bottom,
            char.turned,
            char.side,
        )

    def extend(self, char: _Char) -> None:
        self.end = char.index + 1
        self.left, self.right = min(self.left, char.left), max(self.right, char.right)
        self.top, self.bottom = min(self.top, char.top), max(self.bottom, char.bottom)

    def box(self, index: int) -> Box:
        return Box(index, self.left, self.right, self.top, self.bottom)


def page_layout(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage) -> PageLayout:
    """The page's text layer in reading order (see the module docstring)."""
    chars = _char_texts(textpage)
    if not chars:
        return PageLayout((), ())
    size = _content_size(page)
    rules = page_rules(page, size[1])
    runs, rotated = _runs(textpage, chars, size, rules)
    if len(rotated) > len(runs):
        return PageLayout((_line(chars, ((0, len(chars)),)),), chars)
    lines = _ordered_lines(runs, chars, rules, size[1])
    lines += [_line(chars, ((run.start, run.end),)) for run in rotated]
    return PageLayout(tuple(lines), chars)


def _content_size(page: pdfium.PdfPage) -> tuple[float, float]:
    """The page's width and height in the space its text is drawn in: before its /Rotate, which
    PDFium's page size includes and its character boxes do not."""
    width, height = page.get_size()
    return (height, width) if page.get_rotation() in (90, 270) else (width, height)


def _char_texts(textpage: pdfium.PdfTextPage) -> tuple[str, ...]:
    """Each PDFium character's text. PDFium counts a code point outside the BMP (an emoji) as
    two characters, its UTF-16 halves: the first gets the code point, the second nothing."""
    count = textpage.count_chars()
    if count <= 0:
        return ()
    texts: list[str] = []
    for char in textpage.get_text_range():
        texts.append(char)
        if ord(char) > 0xFFFF:
            texts.append("")
    if len(texts) == count:
        return tuple(texts)
    return tuple(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i)) for i in range(count))


class _Char:
    """A character with a box of its own (top-down coordinates); a plain class with slots:
    a page has thousands."""

    __slots__ = ("index", "left", "right", "top", "bottom", "turned", "side")

    def __init__(
        self, index: int, left: float, right: float, top: float, bottom: float, turned: bool
    ):
        self.index, self.left, self.right, self.top, self.bottom = index, left, right, top, bottom
        self.turned = turned
        self.side = 0  # of the page's gutter: 0 left, 1 inside, 2 right (0 without a gutter)


def _runs(
    textpage: pdfium.PdfTextPage, texts: Sequence[str], size: tuple[float, float], rules: Rules
) -> tuple[list[_Run], list[_Run]]:
    """Upright runs and rotated runs, each in PDFium's order."""
    width, height = size
    lines = _char_lines(textpage, texts, height)
    letters = [c for line in lines for c in line if texts[c.index].isalpha()]
    gutter = _gutter(letters, width)
    walls = sorted(rules.vertical, key=lambda rule: rule.at)
    upright: list[_Run] = []
    rotated: list[_Run] = []
    for line in lines:
        if gutter is not None:
            line = _sided(line, gutter, texts)
        current: _Run | None = None
        for char in line:
            same_kind = current is not None and (current.turned, current.side) == (
                char.turned,
                char.side,
            )
            if same_kind and (char.turned or _joins(current, char, walls)):
                current.extend(char)
                continue
            current = _Run.of(char)
            (rotated if char.turned else upright).append(current)
    return upright, rotated


def _char_lines(
    textpage: pdfium.PdfTextPage, texts: Sequence[str], height: float
) -> list[list[_Char]]:
    """The characters with a box of their own, as PDFium breaks them into lines."""
    lines: list[list[_Char]] = [[]]
    box = pdfium_c.FS_RECTF()
    for index, text in enumerate(texts):
        if text in ("\r", "\n"):
            if lines[-1]:
                lines.append([])
            continue
        if text.isspace() or not pdfium_c.FPDFText_GetLooseCharBox(textpage.raw, index, box):
            continue  # no box of its own: joins a run only between two characters of it
        if box.right <= box.left and box.top <= box.bottom:
            continue
        angle = pdfium_c.FPDFText_GetCharAngle(textpage.raw, index)
        turned = angle >= 0 and min(angle, 2 * math.pi - angle) > UPRIGHT
        lines[-1].append(
            _Char(index, box.left, box.right, height - box.top, height - box.bottom, turned)
        )
    return [line for line in lines if line]


def _gutter(letters: Sequence[_Char], page_width: float) -> tuple[float, float] | None:
    """The widest strip in the middle of the text that (almost) no letter covers, if it is at
    least `MIN_GUTTER` wide: a column gutter, where a patent prints its line numbers (digits)."""
    upright = [c for c in letters if not c.turned]
    if len(upright) < MIN_GUTTER_LETTERS:
        return None
    # clipped to the page, so text placed far off it cannot make the profile huge
    lefts = np.clip([c.left for c in upright], 0, page_width)
    rights = np.clip([c.right for c in upright], 0, page_width)
    origin, width = float(lefts.min()), float(rights.max() - lefts.min())
    if width <= 0:
        return None
    bins = int(width) + 1
    coverage = np.zeros(bins + 1)
    np.add.at(coverage, (lefts - origin).astype(int), 1)
    np.add.at(coverage, np.minimum((rights - origin).astype(int) + 1, bins), -1)
    coverage = np.cumsum(coverage)[:bins]
    low = coverage <= GUTTER_COVERAGE * np.percentile(coverage, 90)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], low.astype(np.int8), [0]))))
    best: tuple[int, int] | None = None
    for start, end in edges.reshape(-1, 2):  # [start, end) of each strip of low bins
        inside = start > 0 and end < bins and 0.3 * width <= (start + end) / 2 <= 0.7 * width
        wider = best is None or end - start > best[1] - best[0]
        if inside and end - start >= MIN_GUTTER and wider:
            best = (int(start), int(end))
    return None if best is None else (origin + best[0], origin + best[1])


def _sided(line: list[_Char], gutter: tuple[float, float], texts: Sequence[str]) -> list[_Char]:
    """The line's characters marked with their side of the gutter, a patent's line numbers in
    the gutter left out; the line whole, unmarked, when some of its text crosses the gutter (a
    title across both columns)."""
    sides = [
        0 if middle < gutter[0] else 2 if middle > gutter[1] else 1
        for middle in ((char.left + char.right) / 2 for char in line)
    ]
    for position, (char, side) in enumerate(zip(line, sides, strict=True)):
        if side != 1:
            continue
        if not texts[char.index].isdigit():
            return line
        for neighbour in (position - 1, position + 1):
            if 0 <= neighbour < len(line) and sides[neighbour] != 1:
                other = line[neighbour]
                gap = max(other.left - char.right, char.left - other.right)
                if gap < NUMBER_SPACE * (char.bottom - char.top):
                    return line  # a number across the gutter, not beside it
    for char, side in zip(line, sides, strict=True):
        char.side = side
    return [char for char in line if char.side != 1]


def _joins(run: _Run, char: _Char, walls: Sequence[Rule]) -> bool:
    """Whether a character continues the run: on its line, near it, no rule between them.

    Distance is to the run's whole box, so right-to-left text (which PDFium gives in logical
    order, each character left of the one before) stays one run.
    """
    line_height = max(run.bottom - run.top, char.bottom - char.top)
    overlap = min(run.bottom, char.bottom) - max(run.top, char.top)
    if overlap < 0.5 * min(run.bottom - run.top, char.bottom - char.top):
        return False
    if max(char.left - run.right, run.left - char.right) > GAP * line_height:
        return False
    middle = (char.top + char.bottom) / 2
    return not (char.left > run.right and _wall_between(walls, run.right, char.left, middle))


def _wall_between(walls: Sequence[Rule], x0: float, x1: float, y: float) -> bool:
    for rule in walls:
        if rule.at >= x1:
            return False
        if rule.at > x0 and rule.start <= y <= rule.end:
            return True
    return False


def _ordered_lines(
    runs: list[_Run], chars: Sequence[str], rules: Rules, height: float
) -> list[Line]:
    boxes = [run.box(index) for index, run in enumerate(runs)]
    tables = ruled_tables(boxes, rules, len(boxes))
    in_tables = set().union(*(table.members for table in tables))
    found = {table.box.index: table for table in tables}
    blocks = [box for box in boxes if box.index not in in_tables]
    blocks += [table.box for table in tables]
    margins = _margins(runs, height)
    lines: list[Line] = []
    for region in regions(blocks):
        region_rows = rows(region)
        text_rows = [[b for b in row if b.index not in found] for row in region_rows]
        for table in aligned_tables(text_rows, len(boxes) + len(found)):
            found[table.box.index] = table
            region_rows = _with_table(region_rows, table)
        for row in region_rows:
            lines += _row_lines(row, runs, chars, found, margins)
    return lines


def _margins(runs: Sequence[_Run], height: float) -> dict[int, tuple[str, float]]:
    """The runs in the top or bottom `MARGIN` of a page that has text between them (a page
    whose only text is one line near its top has no running head to leave out): their margin
    and inset."""
    zones = {}
    for index, run in enumerate(runs):
        middle = (run.top + run.bottom) / 2 / height
        if middle <= MARGIN:
            zones[index] = (TOP, middle)
        elif middle >= 1 - MARGIN:
            zones[index] = (BOTTOM, 1 - middle)
    return zones if len(zones) < len(runs) else {}


def _with_table(region_rows: list[list[Box]], table: Table) -> list[list[Box]]:
    """The rows with the table's boxes replaced by the table, where its first row was."""
    out, placed = [], False
    for row in region_rows:
        kept = [b for b in row if b.index not in table.members]
        if len(kept) < len(row) and not placed:
            kept.append(table.box)
            placed = True
        if kept:
            out.append(sorted(kept, key=lambda b: b.left))
    return out


def _row_lines(
    row: list[Box],
    runs: list[_Run],
    chars: Sequence[str],
    tables: dict[int, Table],
    margins: dict[int, tuple[str, float]],
) -> list[Line]:
    """A row's runs as one line (a margin run as a line of its own), a table as its lines."""
    lines: list[Line] = []
    pieces: list[Piece] = []
    for box in row:
        if box.index in tables:
            if pieces:
                lines.append(_line(chars, pieces))
                pieces = []
            lines += _table_lines(tables[box.index], runs, chars)
            continue
        run = runs[box.index]
        if box.index in margins:
            margin, inset = margins[box.index]
            lines.append(_line(chars, ((run.start, run.end),), margin, inset))
            continue
        if pieces:
            pieces.append(" ")
        pieces.append((run.start, run.end))
    if pieces:
        lines.append(_line(chars, pieces))
    return lines


def _table_lines(table: Table, runs: list[_Run], chars: Sequence[str]) -> list[Line]:
    """The table as Markdown: a line per row, `| --- |` under the header row."""
    lines = []
    for number, row in enumerate(table.rows):
        pieces: list[Piece] = ["|"]
        for cell in row:
            pieces.append(" ")
            for position, box in enumerate(cell):
                if position:
                    pieces.append(" ")
                pieces.append((runs[box.index].start, runs[box.index].end))
            pieces.append(" |")
        lines.append(_line(chars, pieces, table=True))
        if number == 0:
            lines.append(_line(chars, ("|" + " --- |" * len(row),), table=True))
    return lines


def _line(
    chars: Sequence[str],
    pieces: Sequence[Piece],
    margin: str | None = None,
    inset: float = 0.0,
    table: bool = False,
) -> Line:
    text = "".join(
        piece if isinstance(piece, str) else "".join(chars[piece[0] : piece[1]]) for piece in pieces
    )
    return Line(tuple(pieces), text, margin, inset, table)
