"""The straight horizontal and vertical lines drawn on a PDF page: the rules of its tables.

A table's rules are line segments of path objects: a grid's strokes, the edges of its cell
rectangles, or thin filled rectangles (LaTeX's booktabs rules). Segments are read with PDFium and
placed on the page through their object's matrix, in points from the top left. Only top-level
path objects are read, and a page with more than `MAX_PATH_OBJECTS` of them, `MAX_SEGMENTS`
segments or `MAX_RULES` rules (a vector chart, a hostile file) is taken to have none: tables
are found by their text's alignment instead.
"""

from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

MIN_RULE_LENGTH = 12.0  # points: shorter strokes are glyph parts, ticks or bullets
STRAIGHT = 1.0  # points a rule's ends may differ across its length
MAX_PATH_OBJECTS = 2000
MAX_SEGMENTS = 20000
MAX_RULES = 500  # a side: more is a drawing or lined paper, and tables are sought band by band


@dataclass(frozen=True)
class Rule:
    """A horizontal rule at `at` from `start` to `end` along x, or a vertical one along y."""

    at: float
    start: float
    end: float


@dataclass(frozen=True)
class Rules:
    horizontal: tuple[Rule, ...]
    vertical: tuple[Rule, ...]


NO_RULES = Rules((), ())


def page_rules(page: pdfium.PdfPage, height: float) -> Rules:
    """The page's horizontal and vertical rules, top-down from `height` (that of the space its
    content is drawn in)."""
    found = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=0)
    paths = list(itertools.islice(found, MAX_PATH_OBJECTS + 1))
    if len(paths) > MAX_PATH_OBJECTS:
        return NO_RULES
    horizontal, vertical, budget = [], [], MAX_SEGMENTS
    for path in paths:
        count = pdfium_c.FPDFPath_CountSegments(path.raw)
        budget -= max(count, 0)
        if budget < 0:
            return NO_RULES
        for (x0, y0), (x1, y1) in _lines(path.raw, count):
            y0, y1 = height - y0, height - y1
            if abs(y1 - y0) <= STRAIGHT and abs(x1 - x0) >= MIN_RULE_LENGTH:
                horizontal.append(Rule((y0 + y1) / 2, min(x0, x1), max(x0, x1)))
            elif abs(x1 - x0) <= STRAIGHT and abs(y1 - y0) >= MIN_RULE_LENGTH:
                vertical.append(Rule((x0 + x1) / 2, min(y0, y1), max(y0, y1)))
    rules = Rules(_merged(horizontal), _merged(vertical))
    if max(len(rules.horizontal), len(rules.vertical)) > MAX_RULES:
        return NO_RULES
    return rules


def _lines(path, count: int) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The path's straight segments in page space (curves are skipped, closes drawn)."""
    matrix = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(path, matrix):
        return []
    x, y = ctypes.c_float(), ctypes.c_float()
    lines, current, opened = [], None, None
    for index in range(count):
        segment = pdfium_c.FPDFPath_GetPathSegment(path, index)
        if not segment or not pdfium_c.FPDFPathSegment_GetPoint(segment, x, y):
            continue
        point = (
            matrix.a * x.value + matrix.c * y.value + matrix.e,
            matrix.b * x.value + matrix.d * y.value + matrix.f,
        )
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        if kind == pdfium_c.FPDF_SEGMENT_LINETO and current is not None:
            lines.append((current, point))
        if kind == pdfium_c.FPDF_SEGMENT_MOVETO:
            opened = point
        current = point
        if pdfium_c.FPDFPathSegment_GetClose(segment) and opened is not None:
            lines.append((point, opened))
            current = opened
    return lines


def _merged(rules: list[Rule]) -> tuple[Rule, ...]:
    """Rules on one line that touch or overlap joined into one (a grid's strokes, a thin
    rectangle's two long edges)."""
    merged: list[Rule] = []
    for rule in sorted(rules, key=lambda r: (round(r.at / STRAIGHT), r.start)):
        last = merged[-1] if merged else None
        if last and abs(last.at - rule.at) <= STRAIGHT and rule.start <= last.end + STRAIGHT:
            merged[-1] = Rule(last.at, last.start, max(last.end, rule.end))
        else:
            merged.append(rule)
    return tuple(merged)
