"""Boxes of text on a page -> the order a person reads them: column by column, row by row.

Shared by recognised pages (engine/ocr.py: one box per detected line) and text-layer pages
(engine/layout.py: one box per run of characters). Coordinates are page points from the top
left, so `top < bottom`.

The page is split into two columns when a vertical gutter clearly separates them (at least
`MIN_COLUMN_LINES` boxes of at least `MIN_COLUMN_WIDTH` of the text width on each side, so a
table of short cells is not taken for columns); boxes crossing it, such as a title, a full-width
figure caption or a footer, split the page into bands read one after another. Within a column,
boxes are read top to bottom, boxes on the same row left to right.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_COLUMN_LINES = 4
MIN_COLUMN_WIDTH = 0.3  # of the text's width
# points: a gutter is tried just right of a box's right edge, so the edges of justified lines,
# which differ in the last digits, fall on one side of it
SLACK = 1.0


@dataclass(frozen=True)
class Box:
    """A box's extent and its caller's index for it."""

    index: int
    left: float
    right: float
    top: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def regions(boxes: Sequence[Box]) -> list[list[Box]]:
    """The boxes in regions read one after another: a column of a band, or a full-width box."""
    if not boxes:
        return []
    gutter = _gutter(boxes)
    if gutter is None:
        return [list(boxes)]
    ordered: list[list[Box]] = []
    spanning = sorted((b for b in boxes if b.left < gutter < b.right), key=lambda b: b.middle)
    edges = [-math.inf, *(b.middle for b in spanning), math.inf]
    for band, (upper, lower) in enumerate(zip(edges, edges[1:], strict=False)):
        inside = [b for b in boxes if upper < b.middle <= lower and not b.left < gutter < b.right]
        left = [b for b in inside if b.right <= gutter]
        right = [b for b in inside if b.left >= gutter]
        ordered += [column for column in (left, right) if column]
        if band < len(spanning):
            ordered.append([spanning[band]])
    return ordered


def rows(boxes: Sequence[Box]) -> list[list[Box]]:
    """Top to bottom; a box whose middle lies within the row's first box joins that row; each
    row left to right."""
    found: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: b.middle):
        if found and found[-1][0].top < box.middle < found[-1][0].bottom:
            found[-1].append(box)
        else:
            found.append([box])
    return [sorted(row, key=lambda b: b.left) for row in found]


def reading_order(boxes: Sequence[Box]) -> list[list[int]]:
    """Rows of box indexes in the order a person reads them."""
    return [[b.index for b in row] for region in regions(boxes) for row in rows(region)]


def _gutter(boxes: Sequence[Box]) -> float | None:
    """The x of a vertical gap that clearly splits the boxes into two columns, if any: of the
    candidates, the one fewest boxes cross, then the one with most boxes on its emptier side.

    Counted with sorted edges and bisection: a text page has hundreds of boxes.
    """
    left_edge = min(b.left for b in boxes)
    width = max(b.right for b in boxes) - left_edge
    if width <= 0:
        return None
    rights, lefts = sorted(b.right for b in boxes), sorted(b.left for b in boxes)
    wide = [b for b in boxes if b.right - b.left >= MIN_COLUMN_WIDTH * width]
    wide_rights, wide_lefts = sorted(b.right for b in wide), sorted(b.left for b in wide)
    best, best_score = None, (-math.inf, -math.inf)
    for candidate in sorted(set(rights)):
        x = candidate + SLACK
        if not left_edge + 0.3 * width <= x <= left_edge + 0.7 * width:
            continue
        wide_left = bisect.bisect_right(wide_rights, x)
        wide_right = len(wide_lefts) - bisect.bisect_left(wide_lefts, x)
        if min(wide_left, wide_right) < MIN_COLUMN_LINES:
            continue
        left = bisect.bisect_right(rights, x)
        right = len(lefts) - bisect.bisect_left(lefts, x)
        score = (-(len(boxes) - left - right), min(left, right))  # fewest boxes across it
        if score > best_score:
            best, best_score = x, score
    return best
