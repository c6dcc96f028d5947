"""Scanned pages -> text in reading order, with the box of every recognised character.

Engine: RapidOCR (`rapidocr-onnxruntime`), PaddleOCR's PP-OCRv4 detection and recognition models
converted to ONNX and shipped inside the wheel, so recognition works offline and installs with
pip. Its angle classifier is not used: it turns some upright lines of a clean page upside down
(a whole line read as "n n s n sd s"), and page orientation comes from the PDF's /Rotate.
Tesseract is an optional second engine (engine/ocr_tesseract.py), chosen with
PALIMPSEST_OCR_ENGINE=tesseract (`OcrOptions.engine`) and used only where the `tesseract`
program is installed; elsewhere RapidOCR reads the page and a warning says why. Either engine
gives the same `PageOcr`, which records which one read it.

When a page is recognised (`needs_ocr`): its text layer holds fewer usable characters (letters
and digits) than its images suggest: images cover at least `MIN_IMAGE_COVERAGE` of the page and
the text layer has fewer than `CHARS_PER_IMAGE_PAGE` x coverage usable characters. A page of
body text has 2,000-3,500, so a full-page scan with a stamped Bates number or a court header is
recognised, while a text page with a large figure keeps its own text. Pages without images
(blank, or vector drawings only) are never recognised: there is nothing to read.

How: the page is rendered at `OCR_DPI` (its longer side capped at `MAX_RENDER_SIDE` pixels so a
huge page stays bounded), text lines are detected on a copy at most 2,000 pixels on a side, and
each line is recognised from the full-resolution render. RapidOCR's own word-box step gives every
character's position along its line; a line keeps its four corners and each character's
fractions along it, in page points from the top-left corner of the page as displayed, so a quote
can be highlighted on the page image exactly as for a text PDF (engine/page_images.py).

Reading order (`reading_order`): lines are deskewed by the page's median line angle, then
ordered as text-layer pages are (engine/reading_order.py): column by column when a gutter
clearly separates two columns, in bands between lines that cross it, and row by row within a
column.

Confidence (RapidOCR's; Tesseract's is described in its module): a page's is the mean of its lines'
recognition scores (RapidOCR's mean character probability) weighted by their length, counting the
lines dropped for scoring under `TEXT_SCORE`; a page under `LOW_CONFIDENCE` is flagged. Measured on
six sample pages (bench/ocr.py): clean, skewed (1.5 degrees) and noisy 300 dpi scans score 0.988
with 0.4-1.1% of their characters wrong, 150 and 100 dpi scans 0.97 with 3.4% and 1.2% (mostly
spaces the recognizer drops); a blurred, barely legible scan scores 0.885 (tests/test_ocr.py). The
score misses some bad pages (a title page blurred by 3 pixels scores 0.97 with 13% wrong), so a
page that passes is not proof.

Bounds: one page is recognised at a time per process (a lock), with an explicit number of
onnxruntime threads (`OcrOptions.threads`, all this process may use by default, at most 4), so
concurrent uploads take turns page by page instead of oversubscribing the cores. A page's work
is bounded: one render of at most `MAX_RENDER_SIDE` pixels a side, one detection pass on at
most 2,000, and at most RapidOCR's 1,000 detected lines, recognised in batches; the page's time
limit (`OcrOptions.page_seconds`) is checked after each step, so a page over it raises
`OcrError` at most one step (seconds) after the limit.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from engine.errors import PalimpsestError
from engine.reading_order import Box
from engine.reading_order import reading_order as ordered_rows

OCR_DPI = 300
POINTS_PER_INCH = 72
MAX_RENDER_SIDE = 4000  # pixels: A4 and Letter stay at 300 dpi, larger pages get less
TEXT_SCORE = 0.5  # lines scored under this are dropped (RapidOCR's default)
RAPIDOCR, TESSERACT = "rapidocr", "tesseract"
ENGINES = (RAPIDOCR, TESSERACT)
LOW_CONFIDENCE = 0.95  # RapidOCR's
# Each engine's scores have their own scale (bench/ocr.py: clean 300 dpi pages score 0.985-0.99
# with RapidOCR, 0.945-0.965 with Tesseract); a page under its engine's bound is flagged.
LOW_CONFIDENCE_BY_ENGINE = {RAPIDOCR: LOW_CONFIDENCE, TESSERACT: 0.94}
MIN_IMAGE_COVERAGE = 0.3
CHARS_PER_IMAGE_PAGE = 200
REC_BATCH = 6  # lines recognised between two checks of the time limit (RapidOCR's batch)
WIDE_GAP = 0.5  # line heights between two characters that must be words apart (a table gap)
DEFAULT_PAGE_SECONDS = 120.0
MAX_DEFAULT_THREADS = 4

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left


class OcrError(PalimpsestError):
    """A page that could not be recognised; the message says why, in one line."""


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_threads() -> int:
    configured = os.environ.get("PALIMPSEST_OCR_THREADS")
    return int(configured) if configured else min(_usable_cores(), MAX_DEFAULT_THREADS)


def _default_page_seconds() -> float:
    return float(os.environ.get("PALIMPSEST_OCR_PAGE_SECONDS", DEFAULT_PAGE_SECONDS))


def _default_engine() -> str:
    return os.environ.get("PALIMPSEST_OCR_ENGINE", RAPIDOCR).strip().lower() or RAPIDOCR


def _default_languages() -> str:
    return os.environ.get("PALIMPSEST_OCR_LANGUAGES", "").strip() or "eng"


@dataclass(frozen=True)
class OcrOptions:
    """How pages are recognised: PALIMPSEST_OCR_ENGINE (rapidocr or tesseract),
    PALIMPSEST_OCR_THREADS, PALIMPSEST_OCR_PAGE_SECONDS, and for Tesseract the languages of
    its installed models, PALIMPSEST_OCR_LANGUAGES ("eng+rus"; RapidOCR's model is fixed)."""

    threads: int = field(default_factory=_default_threads)
    page_seconds: float = field(default_factory=_default_page_seconds)
    engine: str = field(default_factory=_default_engine)
    languages: str = field(default_factory=_default_languages)


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, score, corners, and each character's span along it."""

    text: str
    confidence: float
    quad: Quad  # page points, origin at the top-left of the displayed page
    spans: tuple[tuple[float, float], ...]  # per character of `text`: start/end fraction

    def char_quad(self, index: int) -> Quad:
        """The corners of character `index`, cut out of the line's quad along its length."""
        (tl, tr, br, bl), (start, end) = self.quad, self.spans[index]
        return (_lerp(tl, tr, start), _lerp(tl, tr, end), _lerp(bl, br, end), _lerp(bl, br, start))

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "quad": [[round(x, 2), round(y, 2)] for x, y in self.quad],
            "spans": [[round(a, 4), round(b, 4)] for a, b in self.spans],
        }

    @classmethod
    def from_json(cls, data: dict) -> OcrLine:
        quad = tuple((float(x), float(y)) for x, y in data["quad"])
        spans = tuple((float(a), float(b)) for a, b in data["spans"])
        return cls(str(data["text"]), float(data["confidence"]), quad, spans)


@dataclass(frozen=True)
class PageOcr:
    """A recognised page: rows of lines in reading order (one row: boxes side by side)."""

    rows: tuple[tuple[OcrLine, ...], ...]
    confidence: float  # length-weighted mean line score, dropped lines included; 1.0 if none
    seconds: float = 0.0
    engine: str = RAPIDOCR  # which engine read the page: its scores have their own scale

    @property
    def low_confidence(self) -> bool:
        return is_low_confidence(self.confidence, self.engine)

    @property
    def lines(self) -> list[OcrLine]:
        return [line for row in self.rows for line in row]

    @cached_property
    def raw_text(self) -> str:
        """The page's text as recognised: a row per line, its boxes separated by a space."""
        return "\n".join(" ".join(line.text for line in row) for row in self.rows)

    @cached_property
    def _char_owners(self) -> list[tuple[OcrLine, int] | None]:
        owners: list[tuple[OcrLine, int] | None] = []
        for row_number, row in enumerate(self.rows):
            if row_number:
                owners.append(None)  # the newline between rows
            for line_number, line in enumerate(row):
                if line_number:
                    owners.append(None)  # the space between boxes of a row
                owners.extend((line, index) for index in range(len(line.text)))
        return owners

    def char_quad(self, index: int) -> Quad | None:
        """The corners of `raw_text[index]` on the page; None for a separator."""
        owner = self._char_owners[index]
        return owner[0].char_quad(owner[1]) if owner else None

    def to_json(self) -> dict:
        return {
            "confidence": round(self.confidence, 4),
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "rows": [[line.to_json() for line in row] for row in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict) -> PageOcr:
        rows = tuple(tuple(OcrLine.from_json(line) for line in row) for row in data["rows"])
        engine = str(data.get("engine", RAPIDOCR))  # pages stored before Tesseract: RapidOCR's
        return cls(rows, float(data["confidence"]), float(data.get("seconds", 0.0)), engine)


def is_low_confidence(confidence: float, engine: str = RAPIDOCR) -> bool:
    """Whether a page `engine` read with `confidence` is flagged as possibly misread."""
    return confidence < LOW_CONFIDENCE_BY_ENGINE.get(engine, LOW_CONFIDENCE)


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


# -- which pages -------------------------------------------------------------------------------


def usable_chars(text: str) -> int:
    return sum(1 for char in text if char.isalnum())


def image_coverage(page: pdfium.PdfPage) -> float:
    """The fraction of the page that its images cover (overlaps counted twice, capped at 1)."""
    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    covered = 0.0
    for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
        left, bottom, right, top = image.get_bounds()
        overlap_x = min(right, width) - max(left, 0.0)
        overlap_y = min(top, height) - max(bottom, 0.0)
        if overlap_x > 0 and overlap_y > 0:
            covered += overlap_x * overlap_y
    return min(covered / (width * height), 1.0)


def needs_ocr(page: pdfium.PdfPage, text: str) -> bool:
    """Whether the page's text layer is far emptier than its images suggest (module docstring)."""
    chars = usable_chars(text)
    if chars >= CHARS_PER_IMAGE_PAGE:
        return False
    coverage = image_coverage(page)
    return coverage >= MIN_IMAGE_COVERAGE and chars < CHARS_PER_IMAGE_PAGE * coverage


# -- recognition ---------------------------------------------------------------------------------


@dataclass
class _Engine:
    ocr: Any  # rapidocr_onnxruntime.RapidOCR
    lock: threading.Lock


_TESSERACT_TURNS = threading.Lock()  # Tesseract's pages take turns too, one per process


@cache
def _engine(threads: int) -> _Engine:
    """One RapidOCR per thread count and process: its models are read-only, 0.5 s to load."""
    from rapidocr_onnxruntime import RapidOCR

    threads = max(1, min(threads, _usable_cores()))
    ocr = RapidOCR(
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
        use_cls=False,
        max_side_len=MAX_RENDER_SIDE,
        det_limit_type="max",  # detection on a copy at most 2,000 pixels on a side
    )
    return _Engine(ocr, threading.Lock())


def render_scale(page_width: float, page_height: float) -> float:
    """Pixels per point: `OCR_DPI`, less where the longer side would pass `MAX_RENDER_SIDE`."""
    scale = OCR_DPI / POINTS_PER_INCH
    longest = max(page_width, page_height, 1.0)
    return min(scale, MAX_RENDER_SIDE / longest)


def render_for_ocr(page: pdfium.PdfPage) -> tuple[np.ndarray, float]:
    """The page as a BGR image for recognition, and its pixels per point."""
    scale = render_scale(*page.get_size())
    return page.render(scale=scale).to_numpy(), scale


def chosen_engine(options: OcrOptions) -> str:
    """The engine that will read pages: the configured one, or RapidOCR where Tesseract is
    configured but not installed (with a warning, once); `OcrError` for an unknown name."""
    if options.engine not in ENGINES:
        raise OcrError(
            f"unknown OCR engine {options.engine!r} (PALIMPSEST_OCR_ENGINE): "
            f"choose {' or '.join(ENGINES)}"
        )
    if options.engine == TESSERACT:
        from engine import ocr_tesseract  # it imports this module; only loaded when configured

        if ocr_tesseract.available():
            return TESSERACT
        _warn_tesseract_missing()
    return RAPIDOCR


@cache
def _warn_tesseract_missing() -> None:
    logging.getLogger(__name__).warning(
        "PALIMPSEST_OCR_ENGINE=tesseract, but the tesseract program is not installed: "
        "scans are read with RapidOCR"
    )


def recognise_page(page: pdfium.PdfPage, options: OcrOptions | None = None) -> PageOcr:
    """Render and recognise one page; `OcrError` when it takes over the page's time limit."""
    options = options or OcrOptions()
    if chosen_engine(options) == TESSERACT:
        return _recognise_with_tesseract(page, options)
    engine = _engine(options.threads)
    with engine.lock:  # waiting for another upload's page does not count against this one
        started = time.monotonic()
        deadline = started + options.page_seconds
        image, scale = render_for_ocr(page)
        _check_deadline(deadline, options)
        found = _recognise(engine.ocr, image, deadline, options)
    lines = [_to_line(text, score, quad, chars, scale) for text, score, quad, chars in found]
    return _assemble(lines, time.monotonic() - started, RAPIDOCR)


def _recognise_with_tesseract(page: pdfium.PdfPage, options: OcrOptions) -> PageOcr:
    """As `recognise_page`, by Tesseract."""
    from engine.ocr_tesseract import recognise_lines

    with _TESSERACT_TURNS:
        started = time.monotonic()
        image, scale = render_for_ocr(page)
        lines = recognise_lines(image, scale, started + options.page_seconds, options)
    return _assemble(lines, time.monotonic() - started, TESSERACT)


def _check_deadline(deadline: float, options: OcrOptions) -> None:
    if time.monotonic() > deadline:
        raise OcrError(
            f"recognising its scan took over {options.page_seconds:g} s, the limit per page"
        )


def _recognise(
    ocr: Any, image: np.ndarray, deadline: float, options: OcrOptions
) -> list[tuple[str, float, np.ndarray, list]]:
    """(text, score, line corners, character corners) for every detected line, in pixels.

    RapidOCR's own steps, as its `__call__` chains them, but in batches of lines so that the time
    limit is checked between them. Batches hold lines of similar length, as RapidOCR's
    recognizer sorts them, so that short lines are not padded to a long one's width.
    """
    boxes, _ = ocr(image, use_cls=False, use_rec=False)  # detection only
    _check_deadline(deadline, options)
    if not boxes:
        return []
    quads = [np.array(box, dtype=np.float32) for box in boxes]
    by_length = sorted(range(len(quads)), key=lambda i: _aspect(quads[i]))
    found: dict[int, tuple[str, float, np.ndarray, list]] = {}
    for start in range(0, len(by_length), REC_BATCH):
        indexes = by_length[start : start + REC_BATCH]
        batch = [quads[i] for i in indexes]
        crops = ocr.get_crop_img_list(image, batch)
        recognised, _ = ocr.text_rec(crops, True)
        with_boxes = ocr.cal_rec_boxes(crops, batch, recognised)
        for index, (text, score, char_boxes, *_) in zip(indexes, with_boxes, strict=True):
            found[index] = (text, float(score), quads[index], char_boxes)
        _check_deadline(deadline, options)
    return [found[index] for index in range(len(quads))]


def _aspect(quad: np.ndarray) -> float:
    return float(np.linalg.norm(quad[1] - quad[0]) / max(np.linalg.norm(quad[3] - quad[0]), 1.0))


def _to_line(text: str, score: float, box: np.ndarray, chars: list, scale: float) -> OcrLine:
    """A line in page points; characters as fractions of the line's length (even spacing when
    RapidOCR's character boxes do not match the text one to one)."""
    if score < TEXT_SCORE:
        text = ""
    quad: Quad = tuple((float(x) / scale, float(y) / scale) for x, y in box)  # type: ignore[assignment]
    if text and len(chars) == len(text):
        text, spans = _spaced(text, _spans_along(np.asarray(box, dtype=np.float64), chars), box)
    else:
        spans = tuple((i / len(text), (i + 1) / len(text)) for i in range(len(text)))
    return OcrLine(text, score, quad, spans)


def _spaced(
    text: str, spans: tuple[tuple[float, float], ...], box: np.ndarray
) -> tuple[str, tuple[tuple[float, float], ...]]:
    """`text` with a space wherever two characters stand `WIDE_GAP` line heights apart.

    The recognizer drops the space at a wide gap inside one detected box (a table's columns,
    "1   Introduction"), which would fuse two words for search; the gap becomes the space's span.
    """
    length = float(np.linalg.norm(box[1] - box[0])) or 1.0
    gap = WIDE_GAP * float(np.linalg.norm(box[3] - box[0])) / length
    out_text, out_spans = [text[0]], [spans[0]]
    for char, span, previous in zip(text[1:], spans[1:], text, strict=False):
        if span[0] - out_spans[-1][1] > gap and not (char.isspace() or previous.isspace()):
            out_text.append(" ")
            out_spans.append((out_spans[-1][1], span[0]))
        out_text.append(char)
        out_spans.append(span)
    return "".join(out_text), tuple(out_spans)


def _spans_along(box: np.ndarray, chars: list) -> tuple[tuple[float, float], ...]:
    origin, direction = box[0], box[1] - box[0]
    length_sq = float(direction @ direction) or 1.0
    spans = []
    for corners in chars:
        along = (np.asarray(corners, dtype=np.float64) - origin) @ direction / length_sq
        spans.append((float(np.clip(along.min(), 0, 1)), float(np.clip(along.max(), 0, 1))))
    return tuple(spans)


def _assemble(lines: list[OcrLine], seconds: float, engine: str) -> PageOcr:
    weights = [max(len(line.text), 1) for line in lines]
    confidence = (
        sum(w * line.confidence for w, line in zip(weights, lines, strict=True)) / sum(weights)
        if lines
        else 1.0  # a blank page: nothing was misread
    )
    kept = [line for line in lines if line.text.strip()]
    rows = tuple(tuple(kept[i] for i in row) for row in reading_order([ln.quad for ln in kept]))
    return PageOcr(rows, confidence, seconds, engine)


# -- reading order ---------------------------------------------------------------------------------


def reading_order(quads: Sequence[Quad]) -> list[list[int]]:
    """Rows of line indexes in the order a person reads them (engine/reading_order.py), the
    lines first deskewed by the page's median line angle."""
    return ordered_rows(_deskewed(quads))


def _deskewed(quads: Sequence[Quad]) -> list[Box]:
    """The lines' boxes rotated by minus the page's median line angle."""
    if not quads:
        return []
    angles = [math.atan2(q[1][1] - q[0][1], q[1][0] - q[0][0]) for q in quads]
    angle = statistics.median(angles)
    cos, sin = math.cos(-angle), math.sin(-angle)
    boxes = []
    for index, quad in enumerate(quads):
        xs = [x * cos - y * sin for x, y in quad]
        ys = [x * sin + y * cos for x, y in quad]
        boxes.append(Box(index, min(xs), max(xs), min(ys), max(ys)))
    return boxes
