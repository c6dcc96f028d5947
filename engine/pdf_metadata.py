"""A document's citation metadata guessed at ingest from the PDF's document information and its
first page.

The document information (Title, Author) is what the PDF's maker wrote, often empty or junk
("Microsoft Word - draft3.docx"); the first page is what a reader sees. So: the title is the
first page's most prominent line (the largest font, as PDFium reports it) unless the document
information has a sensible title that line does not extend; the authors are a line of names just
below that title, else the document information's Author; a DOI is the first DOI-shaped string;
parties are read from "between X and Y" (or a numbered list of parties after "between"); the date
from a dated line ("Dated 14 March 2024", "made on ...", "[Assented to ...]").

These are guesses: the user corrects them in the Library tab, with `palimpsest meta`, or with a
.bib file, and nothing here ever fails an ingest (an unreadable file gives empty metadata).
"""

from __future__ import annotations

import contextlib
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from engine.metadata import DocumentMetadata, is_date

TITLE_SEARCH_LINES = 15  # the title is among the first lines of the first page
FIRST_PAGE_CHARS = 6000  # what is read of the first page: a hostile one may hold millions
MAX_TITLE_LINES = 3
MAX_PARTIES = 6
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH = f"({'|'.join(MONTHS)})"
_DAY_MONTH_YEAR = re.compile(
    rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?{_MONTH},?\s+(\d{{4}})", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(rf"{_MONTH}\s+(\d{{1,2}}),?\s+(\d{{4}})", re.IGNORECASE)
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATED = re.compile(
    r"\b(?:dated(?:\s+as\s+of)?|made\s+on|entered\s+into\s+on|assented\s+to|effective\s+(?:as\s+"
    r"of|from|on)|date:)\s*(?:the\s+)?",
    re.IGNORECASE,
)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)")
_BETWEEN = re.compile(
    r"(?:(?:^|\n)\s*|\b(?:made|entered\s+into|dated|agreement|contract|deed|lease)\b[^\n]{0,80}?)"
    r"\bbetween\b\s*:?\s*",
    re.IGNORECASE,
)
_NUMBERED_PARTY = re.compile(r"(?:^|\s)\((\d{1,2})\)\s+([^,;(\n]+)")
_PARENTHETICAL = re.compile(r"\([^()]*\)")
_NAME_WORD = re.compile(r"(?:[A-Z][\w'’-]*\.?|[A-Z]\.|van|von|de|der|da|di|du|la|le|bin|al-\w+)")
_JUNK_TITLE = re.compile(r"^(untitled|microsoft \w+ - .*|.*\.(docx?|pdf|tex|dvi|rtf|odt))$", re.I)


@dataclass(frozen=True)
class Line:
    text: str
    size: float  # the largest font size on the line, in points (0 when unknown)


def extract_metadata(path: str | Path, first_page_text: str = "") -> DocumentMetadata:
    """The metadata read from the PDF at `path`; empty fields where nothing was found.

    `first_page_text` stands in for a first page without a text layer (a scan, as OCR read it);
    its lines have no font sizes, so the title then comes from the document information only.
    """
    info, lines = _read_pdfium(Path(path))
    if info is None:
        info, lines = _read_pypdf(Path(path))
    if not lines:
        lines = _unsized_lines(first_page_text)
    return metadata_from(info or {}, lines)


def metadata_from(info: dict[str, str], lines: list[Line]) -> DocumentMetadata:
    """The metadata of a document with these document-information entries and first-page
    lines (in reading order)."""
    text = "\n".join(line.text for line in lines)
    title_lines = _title_lines(lines)
    shown_title = " ".join(line.text for line in title_lines)
    title = _choose_title(_clean_info(info.get("Title", "")), shown_title)
    parties = find_parties(text)
    authors: tuple[str, ...] = ()
    if not parties:  # an instrument's PDF author is a clerk, not its maker
        below = lines[lines.index(title_lines[-1]) + 1] if title_lines else None
        authors = _names_line(below.text) if below is not None else ()
        authors = authors or _info_authors(_clean_info(info.get("Author", "")))
    searched = "\n".join([info.get("Subject", ""), info.get("Keywords", ""), text])
    doi = _DOI.search(searched)
    return DocumentMetadata(
        title=title,
        authors=authors,
        doi=doi.group(1).rstrip(".,;:)]}") if doi else "",
        parties=parties,
        date=find_date(text),
    )


# --- reading the PDF ------------------------------------------------------------------------


def _read_pdfium(path: Path) -> tuple[dict[str, str] | None, list[Line]]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(path)
    except Exception:  # PDFium rejects it: pypdf may still read it
        return None, []
    try:
        info = {k: v for k, v in document.get_metadata_dict().items() if isinstance(v, str)}
        if len(document) == 0:
            return info, []
        textpage = document[0].get_textpage()
        count = min(textpage.count_chars(), FIRST_PAGE_CHARS)
        text = textpage.get_text_range(0, count) if count > 0 else ""
        sizes = [pdfium_c.FPDFText_GetFontSize(textpage.raw, i) for i in range(len(text))]
        return info, _lines(text, sizes)
    except Exception:
        return {}, []
    finally:
        document.close()


def _read_pypdf(path: Path) -> tuple[dict[str, str], list[Line]]:
    """Document information and first-page lines without font sizes, from pypdf."""
    import pypdf

    with contextlib.suppress(Exception):
        reader = pypdf.PdfReader(path)
        raw = reader.metadata or {}
        info = {str(k).lstrip("/"): str(v) for k, v in raw.items() if isinstance(v, str)}
        text = reader.pages[0].extract_text() if reader.pages else ""
        return info, _unsized_lines(text)
    return {}, []


def _unsized_lines(text: str) -> list[Line]:
    return [
        Line(" ".join(t.split()), 0.0) for t in text[:FIRST_PAGE_CHARS].splitlines() if t.strip()
    ]


def _lines(text: str, sizes: list[float]) -> list[Line]:
    """The page's non-empty lines, each with its largest font size."""
    lines, current, largest = [], [], 0.0
    for char, size in [*zip(text, sizes, strict=True), ("\n", 0.0)]:
        if char in "\r\n":
            joined = " ".join("".join(current).split())
            if joined:
                lines.append(Line(joined, largest))
            current, largest = [], 0.0
        else:
            current.append(char)
            largest = max(largest, size)
    return lines


# --- the heuristics -------------------------------------------------------------------------


def _title_lines(lines: list[Line]) -> list[Line]:
    """The run of lines in the largest font among the first lines, when that font is larger
    than the page's body text; none when every line is the same size."""
    head = lines[:TITLE_SEARCH_LINES]
    if not head:
        return []
    body = statistics.median(line.size for line in lines)
    largest = max(line.size for line in head)
    if largest <= body * 1.15:
        return []
    start = next(i for i, line in enumerate(head) if line.size == largest)
    run = [head[start]]
    for line in head[start + 1 : start + MAX_TITLE_LINES]:
        if line.size != largest:
            break
        run.append(line)
    return run


def _choose_title(info_title: str, shown: str) -> str:
    """The document information's title, unless the page shows a longer one that begins with it
    (a subtitle) or it has none."""
    if shown.isupper():
        shown = " ".join(word.capitalize() for word in shown.split())
    if not info_title:
        return shown
    if shown.lower().startswith(info_title.lower()) and len(shown) > len(info_title):
        return shown
    return info_title


def _clean_info(value: str) -> str:
    value = " ".join(value.replace("\x00", "").split())
    return "" if _JUNK_TITLE.match(value) else value


def _info_authors(value: str) -> tuple[str, ...]:
    """The document information's Author: people's names as they are, anything else (a firm,
    "Palimpsest sample documents") in braces, BibTeX's mark of a name not to be split."""
    found = tuple(n.strip() for n in re.split(r";|\band\b", value) if n.strip())
    return tuple(name if _names_line(name) else f"{{{name}}}" for name in found)


def _names_line(text: str) -> tuple[str, ...]:
    """The people named on a byline such as "Amara N. Okafor and Lukas Brandt"; none when the
    line is not a list of names (an affiliation, an abstract, a date)."""
    text = re.sub(r"[*†‡§¹²³⁴⁵⁶⁷⁸⁹⁰]|\d", "", text)  # affiliation marks
    parts = [p.strip() for p in re.split(r",|;|&|\band\b", text) if p.strip()]
    if not parts or len(parts) > 12:
        return ()
    for part in parts:
        words = part.split()
        if not 2 <= len(words) <= 5 or not all(_NAME_WORD.fullmatch(w) for w in words):
            return ()
    return tuple(parts)


def find_parties(text: str) -> tuple[str, ...]:
    """The parties named after "between" on a page: a numbered list ("(1) Acme Ltd, a
    company...; and (2) ...") or "between X and Y"."""
    match = _BETWEEN.search(text)
    if match is None:
        return ()
    after = text[match.end() : match.end() + 1200]
    numbered = []
    for found in _NUMBERED_PARTY.finditer(after):
        if int(found.group(1)) != len(numbered) + 1:
            break
        numbered.append(found.group(2))
    if len(numbered) >= 2:
        return _party_names(numbered)
    plain = _PARENTHETICAL.sub(" ", after)
    pair = re.match(r"\s*(.+?)\s+and\s+([^\n]+)", plain, re.DOTALL)
    if pair is None:
        return ()
    second = re.split(r"\s+(?:dated|on|whose|of|each)\b|[,;.]", pair.group(2), maxsplit=1)[0]
    return _party_names([pair.group(1), second])


def _party_names(raw: list[str]) -> tuple[str, ...]:
    names = []
    for name in raw[:MAX_PARTIES]:
        name = " ".join(_PARENTHETICAL.sub(" ", name).split()).strip(" ,;:“”\"'")
        if name.isupper():
            name = " ".join(word.capitalize() for word in name.split())
        if not 2 <= len(name) <= 120:
            return ()
        names.append(name)
    return tuple(names)


def find_date(text: str) -> str:
    """The ISO date of the first dated line ("Dated 14 March 2024"), or ""."""
    for dated in _DATED.finditer(text):
        rest = text[dated.end() : dated.end() + 40]
        for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR, _ISO_DATE):
            found = pattern.match(rest)
            if found and is_date(_iso(pattern, found)):
                return _iso(pattern, found)
    return ""


def _iso(pattern: re.Pattern[str], found: re.Match[str]) -> str:
    if pattern is _ISO_DATE:
        return found.group(0)
    if pattern is _DAY_MONTH_YEAR:
        day, month, year = found.groups()
    else:
        month, day, year = found.groups()
    return f"{year}-{MONTHS.index(month.capitalize()) + 1:02d}-{int(day):02d}"
