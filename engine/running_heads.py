"""Running headers, footers and page numbers: the margin lines left out of a document's text.

A margin line (engine/layout.py: a run of text in the top or bottom tenth of a page) is left out
when it is a bare page number ("12", "- 12 -", "Page 3 of 10", "iv"), or when the same text,
digits aside, sits in the same margin of at least `MIN_PAGES` pages and `MIN_SHARE` of the pages
with margin lines: a journal's running head, a contract's "Confidential" footer, a patent's
number; a heading that happens to open a few pages ("Section 5", "Section 9") is kept.
Comparing with digits aside lets "Page 3" and "Page 4", or "Draft of 12 March" on every page,
count as one line.

The page label a citation shows is not taken from these lines: it is the PDF's own label, else
the page's number (engine/documents.py), so leaving them out changes no label.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from engine.layout import Line

MIN_PAGES = 2
MIN_SHARE = 0.3  # of the pages with margin lines: odd and even pages may have heads of their own
_ROMAN = r"(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_PAGE_NUMBER = re.compile(
    r"(?:page|p\.|pg\.?)?\s*[-–—(\[]?\s*(?:\d{1,5}|" + _ROMAN + r")\s*[-–—)\]]?"
    r"(?:\s*(?:of|/)\s*\d{1,5})?",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


def _key(line: Line) -> tuple[str, str]:
    return line.margin or "", " ".join(_DIGITS.sub("#", line.text.lower()).split())


def running_keys(pages: Sequence[Sequence[Line]]) -> set[tuple[str, str]]:
    """The margin lines, digits aside, found in the margins of at least `MIN_PAGES` pages and
    `MIN_SHARE` of the pages that have margin lines."""
    keys = [{_key(line) for line in lines if line.margin} for lines in pages]
    counts = Counter(key for page_keys in keys for key in page_keys)
    needed = max(MIN_PAGES, MIN_SHARE * sum(1 for page_keys in keys if page_keys))
    return {key for key, count in counts.items() if count >= needed}


def is_running_head(line: Line, running: set[tuple[str, str]]) -> bool:
    """Whether a line is a page number or running header or footer, to leave out of the text."""
    if not line.margin:
        return False
    return _PAGE_NUMBER.fullmatch(line.text.strip()) is not None or _key(line) in running
