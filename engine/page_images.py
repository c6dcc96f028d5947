"""A PDF page as an image, with the passages a citation quotes marked on it.

The stored page text is normalised (ligatures unfolded, soft hyphens dropped), so a quote is found
in PDFium's raw text through a per-character map: each raw character is normalised on its own and
remembers where it came from, and the quote's words are matched with any punctuation or
whitespace between them. The matched characters' boxes are then drawn on the rendered page.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

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


def find_quote(raw: str, quote: str, max_words: int = 40) -> list[tuple[int, int]]:
    """Raw character ranges of `quote` in `raw`: its words in order, anything non-word between.

    Long quotes are matched by their first and last `max_words // 2` words separately, so one
    garbled word in the middle does not lose the whole highlight.
    """
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", quote))]
    if not words:
        return []
    text, origin = normalised_with_map(raw)
    pieces = (
        [words] if len(words) <= max_words else [words[: max_words // 2], words[-max_words // 2 :]]
    )
    ranges = []
    for piece in pieces:
        match = re.search(r"\W+".join(map(re.escape, piece)), text)
        if match:
            ranges.append((origin[match.start()], origin[match.end() - 1] + 1))
    return ranges


def render_page(
    pdf_path: str | Path, page_index: int, quote: str = "", width: int = 900
) -> tuple[Image.Image, bool]:
    """The page rendered `width` pixels wide, the quote highlighted; and whether it was found."""
    document = pdfium.PdfDocument(str(pdf_path))
    try:
        page = document[page_index]
        page_width, page_height = page.get_size()
        scale = width / page_width
        image = page.render(scale=scale).to_pil().convert("RGBA")
        textpage = page.get_textpage()
        ranges = find_quote(textpage.get_text_range(), quote) if quote.strip() else []
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for start, end in ranges:
            for index in range(start, end):
                left, bottom, right, top = textpage.get_charbox(index)
                if right <= left:
                    continue
                draw.rectangle(
                    (
                        left * scale,
                        (page_height - top) * scale,
                        right * scale,
                        (page_height - bottom) * scale,
                    ),
                    fill=HIGHLIGHT,
                )
        return Image.alpha_composite(image, overlay).convert("RGB"), bool(ranges)
    finally:
        document.close()
