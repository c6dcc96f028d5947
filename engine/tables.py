"""Tables on a text-layer page: which runs of text form one, and its rows as Markdown lines.

Two kinds are found:

- Ruled: horizontal rules of the same extent (a grid, or booktabs' top, middle and bottom rules)
  cut the page into bands; consecutive bands whose rows mostly hold two or more cells make a
  table. Its columns are the vertical rules inside it when it has them, else the gaps that no
  cell crosses. In a grid each band is one row (its cells may wrap onto several lines);
  otherwise a line with nothing in the first column continues the row above it.
- Aligned, without rules: at least `MIN_ALIGNED_ROWS` consecutive rows of a column of text, each
  with two or more cells, at least `MIN_ALIGNED_COLUMNS` columns, and no cell crossing a gap
  between columns. Two-column alignments (a term and its definition, a hanging clause number)
  are prose as often as they are tables, so they are left as text.

Either kind must have at least `MIN_FILLED` of its cells filled: labels scattered over a drawing
also line up, in mostly empty rows and columns.

A table's Markdown holds its cells' characters in reading order with `| ` separators (and a
`| --- |` line under the header row) around them, so the table is part of the page text and a
quote of it is found and highlighted like any other text (engine/page_images.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from engine.reading_order import Box, rows
from engine.rules import Rule, Rules

SAME_EXTENT = 4.0  # points by which the ends of one table's horizontal rules may differ
MIN_ALIGNED_ROWS = 3
MIN_ALIGNED_COLUMNS = 3
# Of a table's cells, the share that must hold text: labels scattered over a drawing line up in
# sparse rows and columns, and read better as lines of text than as a mostly empty grid.
MIN_FILLED = 0.5


@dataclass(frozen=True)
class Table:
    """A table's extent, the boxes (runs of text) it holds, and its rows of cells of boxes."""

    box: Box
    members: frozenset[int]  # indexes of the boxes inside
    rows: tuple[tuple[tuple[Box, ...], ...], ...]  # row -> column -> boxes in reading order


def ruled_tables(boxes: Sequence[Box], rules: Rules, index: int) -> list[Table]:
    """Tables framed by the page's rules; new table boxes are numbered from `index`."""
    tables: list[Table] = []
    taken: set[int] = set()
    for group in _same_extent(rules.horizontal):
        for upper, lower in _tabular_spans(group, boxes):
            frame = Box(index + len(tables), group[0].start, group[0].end, upper.at, lower.at)
            inside = [b for b in boxes if b.index not in taken and _within(b, frame)]
            table = _ruled_table(frame, inside, group, rules.vertical)
            if table is not None:
                tables.append(table)
                taken |= table.members
    return tables


def aligned_tables(region_rows: Sequence[Sequence[Box]], index: int) -> list[Table]:
    """Unruled tables among the rows of one column of text (see the module docstring)."""
    tables: list[Table] = []
    start = 0
    while start < len(region_rows):
        end = start
        while end < len(region_rows) and len(region_rows[end]) >= 2:
            end += 1
        table = _aligned_table(region_rows[start:end], index + len(tables))
        if table is not None:
            tables.append(table)
        start = end + 1 if end == start else end
    return tables


def _aligned_table(candidate: Sequence[Sequence[Box]], index: int) -> Table | None:
    wide = sum(1 for row in candidate if len(row) >= MIN_ALIGNED_COLUMNS)
    if len(candidate) < MIN_ALIGNED_ROWS or 2 * wide < len(candidate):
        return None
    slots = _slots([b for row in candidate for b in row])
    if len(slots) < MIN_ALIGNED_COLUMNS:
        return None
    table_rows = []
    for row in candidate:
        cells: list[list[Box]] = [[] for _ in slots]
        for box in row:
            cells[_slot_of(slots, box)].append(box)
        if any(len(cell) > 1 for cell in cells):  # two cells of one row in one column
            return None
        table_rows.append(tuple(tuple(cell) for cell in cells))
    if not _filled(table_rows):
        return None
    members = [b for row in candidate for b in row]
    return Table(_extent(index, members), frozenset(b.index for b in members), tuple(table_rows))


def _same_extent(horizontal: Sequence[Rule]) -> list[list[Rule]]:
    """Horizontal rules grouped by extent, each group top to bottom, groups of two or more."""
    groups: list[list[Rule]] = []
    for rule in sorted(horizontal, key=lambda r: r.at):
        for group in groups:
            if (
                abs(group[0].start - rule.start) <= SAME_EXTENT
                and abs(group[0].end - rule.end) <= SAME_EXTENT
            ):
                group.append(rule)
                break
        else:
            groups.append([rule])
    return [group for group in groups if len(group) >= 2]


def _tabular_spans(group: list[Rule], boxes: Sequence[Box]) -> list[tuple[Rule, Rule]]:
    """(upper, lower) rules of each run of consecutive bands that reads as a table: no band of
    prose inside, at least one band of rows of several cells; empty bands only within."""
    kinds = []
    for upper, lower in zip(group, group[1:], strict=False):
        band = Box(-1, upper.start, upper.end, upper.at, lower.at)
        band_rows = rows([b for b in boxes if _within(b, band)])
        multi = sum(1 for row in band_rows if len(row) >= 2)
        kinds.append("empty" if not band_rows else "table" if 2 * multi >= len(band_rows) else "")
    spans, first = [], None
    for position, kind in enumerate([*kinds, ""]):
        if kind and first is None:
            first = position
        elif not kind and first is not None:
            used = [p for p in range(first, position) if kinds[p] == "table"]
            if used:
                spans.append((group[used[0]], group[used[-1] + 1]))
            first = None
    return spans


def _ruled_table(
    frame: Box, inside: list[Box], group: list[Rule], vertical: Sequence[Rule]
) -> Table | None:
    if not inside:
        return None
    separators = sorted(
        {
            round(rule.at, 1)
            for rule in vertical
            if frame.left + SAME_EXTENT < rule.at < frame.right - SAME_EXTENT
            and rule.start < frame.bottom
            and rule.end > frame.top
        }
    )
    if separators:
        bounds = [frame.left, *separators, frame.right]
        slots = list(zip(bounds, bounds[1:], strict=False))
    else:
        slots = _slots(inside)
    if len(slots) < 2:
        return None
    cuts = [rule.at for rule in group if frame.top <= rule.at <= frame.bottom]
    table_rows: list[list[list[Box]]] = []
    for upper, lower in zip(cuts, cuts[1:], strict=False):
        band = [b for b in inside if upper < b.middle <= lower]
        starts_row = True
        for line in rows(band):
            cells: list[list[Box]] = [[] for _ in slots]
            for box in line:
                cells[_slot_of(slots, box)].append(box)
            if starts_row or (not separators and cells[0]):
                table_rows.append(cells)
                starts_row = False
            else:  # a wrapped line: its cells continue the row above
                for column, cell in enumerate(cells):
                    table_rows[-1][column] += cell
    if len(table_rows) < 2 or not _filled(table_rows):
        return None
    ordered = tuple(
        tuple(tuple(sorted(cell, key=lambda b: (b.top, b.left))) for cell in row)
        for row in table_rows
    )
    return Table(frame, frozenset(b.index for b in inside), ordered)


def _filled(table_rows: Sequence[Sequence[Sequence[Box]]]) -> bool:
    cells = [cell for row in table_rows for cell in row]
    return sum(1 for cell in cells if cell) >= MIN_FILLED * len(cells)


def _within(box: Box, frame: Box) -> bool:
    centre = (box.left + box.right) / 2
    return frame.left <= centre <= frame.right and frame.top < box.middle < frame.bottom


def _slots(boxes: Sequence[Box]) -> list[tuple[float, float]]:
    """Columns: the spans along x that the boxes cover, merged where they overlap."""
    slots: list[tuple[float, float]] = []
    for box in sorted(boxes, key=lambda b: b.left):
        if slots and box.left < slots[-1][1]:
            slots[-1] = (slots[-1][0], max(slots[-1][1], box.right))
        else:
            slots.append((box.left, box.right))
    return slots


def _slot_of(slots: Sequence[tuple[float, float]], box: Box) -> int:
    """The column whose span holds the box's centre (the nearest one to its left if none)."""
    centre = (box.left + box.right) / 2
    return max(0, bisect.bisect_right([start for start, _ in slots], centre) - 1)


def _extent(index: int, boxes: Sequence[Box]) -> Box:
    return Box(
        index,
        min(b.left for b in boxes),
        max(b.right for b in boxes),
        min(b.top for b in boxes),
        max(b.bottom for b in boxes),
    )
