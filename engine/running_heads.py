"""Running headers, footers and page numbers: the margin lines left out of a document's text.

A margin line (engine/layout.py: a run of text in the top or bottom tenth of a page) is left out
when it is a bare page number ("12", "- 12 -", "Page 3 of 10", "iv"), or when it lies within
`RUNNING_INSET` of the page's edge and the same text, digits aside, sits in the same margin of at
least `MIN_PAGES` pages and `MIN_SHARE` of the pages with margin lines: a journal's running
head, a contract's "Confidential" footer, a patent's number. Comparing with digits aside lets
"Sheet 3 of 18" and "Sheet 4 of 18" count as one line; the inset keeps a page's first line of
text, which may open several pages alike ("Section 5", "Section 9"), out of the comparison.

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
# Of the page height. Running heads on the corpus sit at 5-8% from their edge, a page's first or
# last line of body text at 9-11%: the first line of a page is no running head, even if the
# pages open with the same words.
RUNNING_INSET = 0.085
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
    keys = [{_key(line) for line in lines if _running_zone(line)} for lines in pages]
    counts = Counter(key for page_keys in keys for key in page_keys)
    needed = max(MIN_PAGES, MIN_SHARE * sum(1 for page_keys in keys if page_keys))
    return {key for key, count in counts.items() if count >= needed}


def is_running_head(line: Line, running: set[tuple[str, str]]) -> bool:
    """Whether a line is a page number or running header or footer, to leave out of the text."""
    if not line.margin:
        return False
    if _PAGE_NUMBER.fullmatch(line.text.strip()):
        return True
    return _running_zone(line) and _key(line) in running


def _running_zone(line: Line) -> bool:
    return line.margin is not None and line.inset <= RUNNING_INSET
