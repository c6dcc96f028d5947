"""Tesseract as an optional OCR engine: a rendered page -> recognised lines with boxes.

Chosen with PALIMPSEST_OCR_ENGINE=tesseract where the `tesseract` program is installed (Debian:
`tesseract-ocr tesseract-ocr-eng`); nothing else in the app needs it. The program is run
directly, once per page, with the page image on stdin and its TSV report on stdout: that report
already holds every word's box and confidence, which is all a `PageOcr` needs, so neither
ocrmypdf (it writes a new PDF, and needs Ghostscript) nor pytesseract (a wrapper around the same
command) is worth a dependency.

It reads the languages of `OcrOptions.languages` (PALIMPSEST_OCR_LANGUAGES, "eng" by default;
each needs its Debian package, such as `tesseract-ocr-rus`): unlike RapidOCR's model, which
reads Latin script and Chinese, it can read Greek, Cyrillic and others when told to.

A line is Tesseract's line (block, paragraph, line) with the box around its words; its text is
the words joined by single spaces; a word's characters share its box evenly, and a space spans
the gap between two words, so a quote is highlighted as on a RapidOCR page. A line's score is
the mean of its words' confidences (0-100 in the report, here 0-1) weighted by their length.
Tesseract's scores run lower than RapidOCR's on the same pages (0.945-0.965 on clean 300 dpi
scans where RapidOCR gives 0.985-0.99), so it has its own low-confidence bound, 0.94
(`LOW_CONFIDENCE_BY_ENGINE`, engine/ocr.py). On bench/ocr.py's 30 scanned pages it flags every
page Tesseract read with over 2% of its characters wrong (6, at 2.1-23%), and 3 it read well
(0.2-1.4%, all at 100 or 150 dpi); no clean page.

The page's time limit is the subprocess's timeout. Tesseract runs on one thread
(OMP_THREAD_LIMIT=1) whatever `OcrOptions.threads` says: its OpenMP threads spin while they
wait, and on two busy cores a page took 19 s with two threads against 4 s with one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.ocr import POINTS_PER_INCH, OcrError, OcrLine, OcrOptions, Quad

PROGRAM = "tesseract"


def available() -> bool:
    """Whether the `tesseract` program is on this machine's PATH."""
    return shutil.which(PROGRAM) is not None


@dataclass(frozen=True)
class _Word:
    text: str
    confidence: float  # 0-1
    left: float
    top: float
    right: float
    bottom: float


def recognise_lines(
    image: np.ndarray, scale: float, deadline: float, options: OcrOptions
) -> list[OcrLine]:
    """Tesseract's lines of a BGR page image rendered at `scale` pixels per point.

    `deadline` is a `time.monotonic()` time; past it the program is stopped and `OcrError`
    raised, as for a RapidOCR page over its limit.
    """
    dpi = round(scale * POINTS_PER_INCH)
    command = [PROGRAM, "stdin", "stdout", "-l", options.languages, "--dpi", str(dpi), "tsv"]
    environment = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _over_limit(options)
    try:
        report = subprocess.run(
            command,
            input=_pgm(image),
            capture_output=True,
            timeout=remaining,
            env=environment,
            check=True,
        ).stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as error:
        raise _over_limit(options) from error
    except subprocess.CalledProcessError as error:
        raise OcrError(f"tesseract failed ({_reason(error.stderr)})") from error
    return [_line(words, scale) for words in _lines(report)]


def _reason(stderr: bytes) -> str:
    """Why Tesseract stopped, in one line: a language it has no model for, else its last line."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
    missing = [line for line in lines if line.startswith("Failed loading language")]
    if missing:
        return (
            f"{missing[0]}: install its tesseract-ocr-* package or change PALIMPSEST_OCR_LANGUAGES"
        )
    return lines[-1]


def _over_limit(options: OcrOptions) -> OcrError:
    return OcrError(
        f"recognising its scan took over {options.page_seconds:g} s, the limit per page"
    )


def _pgm(image: np.ndarray) -> bytes:
    """The BGR image as a greyscale PGM: uncompressed, so writing it costs nothing."""
    grey = (image[..., :3] @ np.array([0.114, 0.587, 0.299])).round().astype(np.uint8)
    height, width = grey.shape
    return f"P5 {width} {height} 255\n".encode() + grey.tobytes()


def _lines(report: str) -> Iterator[list[_Word]]:
    """The report's words grouped by line, in Tesseract's order; lines without words skipped."""
    current: tuple[str, ...] | None = None
    words: list[_Word] = []
    for row in report.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        key = tuple(cells[1:5])  # page, block, paragraph, line
        if key != current and words:
            yield words
            words = []
        current = key
        left, top, width, height = (float(cell) for cell in cells[6:10])
        words.append(
            _Word(cells[11].strip(), float(cells[10]) / 100, left, top, left + width, top + height)
        )
    if words:
        yield words


def _line(words: list[_Word], scale: float) -> OcrLine:
    """The words of one line as an `OcrLine` in page points: its box around them, each
    character's span a share of its word's box, a space's the gap between two words."""
    text = " ".join(word.text for word in words)
    weights = [len(word.text) for word in words]
    score = sum(w * word.confidence for w, word in zip(weights, words, strict=True)) / sum(weights)
    left, top = min(w.left for w in words) / scale, min(w.top for w in words) / scale
    right, bottom = max(w.right for w in words) / scale, max(w.bottom for w in words) / scale
    quad: Quad = ((left, top), (right, top), (right, bottom), (left, bottom))
    length = max(right - left, 1e-6)
    spans: list[tuple[float, float]] = []
    for number, word in enumerate(words):
        start, end = (word.left / scale - left) / length, (word.right / scale - left) / length
        if number:
            spans.append((spans[-1][1], start))  # the space before this word
        step = (end - start) / len(word.text)
        spans.extend((start + i * step, start + (i + 1) * step) for i in range(len(word.text)))
    return OcrLine(text, max(score, 0.0), quad, tuple(spans))
