"""A PDF page as an image, with the passages a citation quotes marked on it.

The stored page text is laid out in reading order (engine/layout.py: columns one after another,
tables as Markdown) and normalised (ligatures unfolded, soft hyphens dropped). So a quote is
found in the same layout of PDFium's text, whose characters each know their PDFium index (the
separators and table rules the layout added know none), through a per-character map: each
character is normalised on its own and remembers where it came from, and the quote's words are
matched with any punctuation or whitespace between them. The matched characters' boxes are then
drawn on the rendered page.

A recognised (scanned) page has no usable text layer: the same matching runs on the text its
OCR lines spell (`PageOcr.raw_text`), and each matched character's corners come from its line
(engine/ocr.py), so a quote is highlighted on a scan as on a text page. The lines are those kept
at ingest when the caller has them; without them the page is recognised again, which gives the
same lines (recognition is deterministic) but costs a few seconds.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from engine.documents import normalise_text
from engine.layout import page_layout
from engine.ocr import PageOcr, Quad, needs_ocr, recognise_page

HIGHLIGHT = (255, 213, 0, 110)
_WORD = re.compile(r"\w+")


def normalised_with_map(raw: str) -> tuple[str, list[int]]:
    """Lower-cased, NFKC-normalised `raw` with each character's index in `raw`."""
    chars, origin = [], []
    for index, char in enumerate(raw):
        if char in "\ufffe\xad":
            continue
        for piece in unicodedata.normalize("NFKC", char).lower():
            chars.append(" " if piece.isspace() else piece)
            origin.append(index)
    return "".join(chars), origin


def find_quote(
    raw: str, quote: str, max_words: int = 40, between: str = r"\W+"
) -> list[tuple[int, int]]:
    """Raw character ranges of `quote` in `raw`: its words in order, anything non-word between
    (`between`: OCR text may also have nothing there, where the recognizer dropped a space).

    Long quotes are matched by their first and last `max_words // 2` words separately, so one
    garbled word in the middle does not lose the whole highlight; when both are found, in order
    and no further apart than the quote is long, the whole quote between them is one range (a
    table, a long passage).
    """
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", quote))]
    if not words:
        return []
    text, origin = normalised_with_map(raw)
    pieces = (
        [words] if len(words) <= max_words else [words[: max_words // 2], words[-max_words // 2 :]]
    )
    patterns = [re.compile(between.join(map(re.escape, piece))) for piece in pieces]
    matches = [pattern.search(text) for pattern in patterns]
    if len(matches) == 2 and matches[0]:
        last = patterns[1].search(text, matches[0].end())
        if last and last.start() - matches[0].end() <= len(quote):
            return [(origin[matches[0].start()], origin[last.end() - 1] + 1)]
    return [(origin[m.start()], origin[m.end() - 1] + 1) for m in matches if m]


def text_layer_quads(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, quote: str) -> list[Quad]:
    """The corners of the quote's characters in the page's text layer, read in the order the
    page text was (engine/layout.py), in points from the top left."""
    text, origins = page_layout(page, textpage).text_with_origins()
    page_height = page.get_size()[1]
    quads = []
    for start, end in find_quote(text, quote):
        for origin in origins[start:end]:
            if origin < 0:  # a separator or table rule the layout added
                continue
            left, bottom, right, top = textpage.get_charbox(origin)
            if right <= left:
                continue
            top_y, bottom_y = page_height - top, page_height - bottom
            quads.append(((left, top_y), (right, top_y), (right, bottom_y), (left, bottom_y)))
    return quads


def ocr_quads(ocr: PageOcr, quote: str) -> list[Quad]:
    """The corners of the quote's characters on a recognised page, in points from the top left."""
    ranges = find_quote(ocr.raw_text, quote, between=r"\W*")
    quads = (ocr.char_quad(index) for start, end in ranges for index in range(start, end))
    return [quad for quad in quads if quad is not None]


def quote_quads(page: pdfium.PdfPage, quote: str, ocr: PageOcr | None = None) -> list[Quad]:
    """Where the quote is on the page: through its OCR lines when it was recognised (given, or
    recognised now when the page needs it), else through its text layer."""
    textpage = page.get_textpage()
    try:
        if ocr is None and needs_ocr(page, normalise_text(textpage.get_text_range())):
            ocr = recognise_page(page)
        if ocr is not None:
            return ocr_quads(ocr, quote)
        return text_layer_quads(page, textpage, quote)
    finally:
        textpage.close()


def render_page(
    pdf_path: str | Path,
    page_index: int,
    quote: str = "",
    width: int = 900,
    ocr: PageOcr | None = None,
) -> tuple[Image.Image, bool]:
    """The page rendered `width` pixels wide, the quote highlighted; and whether it was found.

    `ocr`: the page's recognised lines, when it was recognised at ingest.
    """
    document = pdfium.PdfDocument(str(pdf_path))
    try:
        page = document[page_index]
        scale = width / page.get_size()[0]
        image = page.render(scale=scale).to_pil().convert("RGBA")
        quads = quote_quads(page, quote, ocr) if quote.strip() else []
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for quad in quads:
            _mark(draw, [(x * scale, y * scale) for x, y in quad])
        return Image.alpha_composite(image, overlay).convert("RGB"), bool(quads)
    finally:
        document.close()


def _mark(draw: ImageDraw.ImageDraw, corners: list[tuple[float, float]]) -> None:
    """A text layer's upright box as a rectangle (as it always was), a scan's line as a polygon."""
    (left, top), (right, top_right), _, (bottom_left, bottom) = corners
    if top == top_right and left == bottom_left:
        draw.rectangle((left, top, right, bottom), fill=HIGHLIGHT)
    else:
        draw.polygon(corners, fill=HIGHLIGHT)
