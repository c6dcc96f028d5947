"""Scanned PDFs built from the sample documents, and the character error rate to judge OCR by.

A "scan" here is a sample page rendered by PDFium to a grayscale image (optionally degraded:
skewed, noisy, low resolution, blurred) and saved by Pillow as an image-only PDF, so its text
can only come back through OCR, and the sample's own text layer is the known text to compare.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pypdf
import pypdfium2 as pdfium
from PIL import Image, ImageFilter

from engine.documents import normalise_text

POINTS_PER_INCH = 72
FOOTER_POINTS = 57  # the samples' footer sits 1.3 cm above the bottom edge: under 2 cm is footer
# Typographic marks the recogniser often returns as their plain forms; folded before comparing
# so that the error rate measures the words, as search and citation see them.
PLAIN_MARKS = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-"})


def render_page(pdf: Path, index: int, dpi: int) -> Image.Image:
    """Page `index` of `pdf` as a grayscale image at `dpi`."""
    document = pdfium.PdfDocument(str(pdf))
    try:
        bitmap = document[index].render(scale=dpi / POINTS_PER_INCH, grayscale=True)
        return bitmap.to_pil().convert("L")
    finally:
        document.close()


def skewed(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=255)


def noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Gaussian noise of `sigma` grey levels and 0.5% salt and pepper, as a poor photocopy."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (image.height, image.width))
    specks = rng.random(pixels.shape)
    pixels[specks < 0.0025] = 0
    pixels[specks > 0.9975] = 255
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def blurred(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def image_pdf(images: list[Image.Image], dpi: int) -> bytes:
    """An image-only PDF, one page per image, each page the image's size at `dpi`."""
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return buffer.getvalue()


def joined_pdf(parts: list[tuple[bytes, int]]) -> bytes:
    """One PDF of the given (PDF bytes, page index) pages, in order."""
    writer = pypdf.PdfWriter()
    for data, index in parts:
        writer.add_page(pypdf.PdfReader(io.BytesIO(data)).pages[index])
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def reference_text(pdf: Path, index: int, down_to: float | None = None) -> str:
    """The page's text layer in reading order: the samples draw their footer first, a reader
    (and OCR) meets it last, so footer lines are moved to the end. `down_to`: only the lines
    that start within that many points of the top (for a scan of the page's top part)."""
    document = pdfium.PdfDocument(str(pdf))
    try:
        page = document[index]
        height = page.get_size()[1]
        textpage = page.get_textpage()
        raw = textpage.get_text_range()
        body, footer, start = [], [], 0
        for line in raw.splitlines(keepends=True):
            first = start + len(line) - len(line.lstrip())
            start += len(line)
            if first >= len(raw):
                continue
            top = textpage.get_charbox(first)[3]
            if down_to is not None and height - top > down_to:
                continue
            (footer if top < FOOTER_POINTS else body).append(line.strip())
        return normalise_text("\n".join(body + footer))
    finally:
        document.close()


def top_part(image: Image.Image, dpi: int, points: float) -> Image.Image:
    """The image's top `points` (a partial scan: the same text, fewer lines to recognise)."""
    return image.crop((0, 0, image.width, round(points * dpi / POINTS_PER_INCH)))


def comparable(text: str) -> str:
    """Text as compared: whitespace runs as one space, typographic marks in their plain form."""
    return " ".join(text.translate(PLAIN_MARKS).split())


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over the reference's length, one numpy row per reference char.

    Each row's insertions are a running minimum: row[j] = min(d[j], row[j-1] + 1) is
    j + cummin(d[k] - k), so a row costs a few vector operations instead of a Python loop.
    """
    ref = np.array([ord(c) for c in reference], dtype=np.int64)
    hyp = np.array([ord(c) for c in hypothesis], dtype=np.int64)
    steps = np.arange(len(hyp) + 1)
    row = steps.copy()
    for i, char in enumerate(ref, 1):
        best = np.empty_like(row)
        best[0] = i
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + (hyp != char))
        row = np.minimum.accumulate(best - steps) + steps
    return float(row[-1]) / max(len(ref), 1)
