"""PDF files -> pages of normalised text, with both page numberings kept.

PDFium (pypdfium2) is the primary parser: it is fast and handles real papers; pypdf is the
fallback for files PDFium rejects, so one parser's bug does not make a document unreadable.
PDFium's text is laid out again in reading order (engine/layout.py: columns one after another,
tables as Markdown), and the running headers, footers and page numbers found across the
document's margins (engine/running_heads.py) are left out of the page text. Files only pypdf
can open keep pypdf's order.
Every failure becomes an `IngestError` whose message is one line a user can act on.

Pages whose text layer is empty or far emptier than their images suggest are recognised
(engine/ocr.py decides which, and how), page by page, after every page's text layer has been
read, so the page limit and cheap failures come before any slow work. A recognised page keeps
its `PageOcr` (lines, boxes, confidence). A page that cannot be recognised in time fails the
whole file, so nothing partial is ever stored. Files only pypdf can open are not recognised:
their scanned pages stay empty.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pypdf
import pypdfium2 as pdfium

from engine.errors import PalimpsestError, first_line
from engine.layout import lines_text, page_layout
from engine.ocr import OcrError, OcrOptions, PageOcr, needs_ocr, recognise_page
from engine.running_heads import is_running_head, running_keys

PDFIUM_PASSWORD_ERROR = 4
PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the PDF spec lets the header start within the first 1024 bytes


# (pages recognised so far, pages to recognise) -> None, after each recognised page
OcrProgress = Callable[[int, int], None]


class IngestError(PalimpsestError):
    """A file that cannot become part of the library; the message says why, in one line."""


@dataclass(frozen=True)
class Page:
    page_index: int  # physical, 0-based
    page_label: str  # printed label ("iv", "12"); the 1-based number when the PDF has none
    text: str  # normalised extracted text; chunk offsets index into this
    ocr: PageOcr | None = None  # set when the text was recognised from the page's image

    @property
    def recognised(self) -> bool:
        return self.ocr is not None

    @property
    def low_confidence(self) -> bool:
        return self.ocr is not None and self.ocr.low_confidence


@dataclass(frozen=True)
class ParsedDocument:
    doc_id: str  # sha256 of the file bytes
    filename: str
    size_bytes: int
    pages: list[Page]

    @property
    def empty_pages(self) -> int:
        return sum(1 for page in self.pages if not page.text.strip())

    @property
    def recognised_pages(self) -> list[int]:
        """Indexes of the pages whose text was recognised from their image."""
        return [page.page_index for page in self.pages if page.recognised]

    @property
    def low_confidence_pages(self) -> list[int]:
        return [page.page_index for page in self.pages if page.low_confidence]

    @property
    def ocr_confidence(self) -> float | None:
        """Mean recognition confidence over the recognised pages; None when there are none."""
        scores = [page.ocr.confidence for page in self.pages if page.ocr is not None]
        return sum(scores) / len(scores) if scores else None


_SPACES = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Line breaks other than "\n" that str.splitlines() and regex \s also treat as line ends.
_LINE_BREAKS = re.compile(r"\x85|\u2028|\u2029")
# Characters that carry no text: unpaired surrogates (pypdf can decode a PDF's UTF-16 into them;
# they cannot be stored as UTF-8 nor tokenised), noncharacters, a stray byte-order mark, and the
# bidi embedding/override/isolate controls, which would reverse how the rest of a passage is
# displayed wherever it is shown (search hits, citations, exports).
_NOT_TEXT = re.compile(r"[\ud800-\udfff\ufdd0-\ufdef\uffff\ufeff\u202a-\u202e\u2066-\u2069]")
MAX_LABEL_CHARS = 32


def normalise_text(raw: str) -> str:
    """Canonical page text: unified newlines, ligatures unfolded, soft hyphens joined, control
    and invisible formatting characters (see `_NOT_TEXT`) dropped.

    PDFium marks a word hyphenated across a line break with U+FFFE and already joins the two
    halves, so dropping the marker restores the word ("pa\\ufffepers" -> "papers").
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "").replace("\xad", "")
    text = _LINE_BREAKS.sub("\n", _NOT_TEXT.sub("", text))
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def page_label(raw: str | None, index: int) -> str:
    """A printable page label: the PDF's own (a short line of text), else the 1-based number.

    Labels come from the file and are shown in every citation ("p. iv"), so any control or
    formatting characters are dropped and the length is bounded.
    """
    label = " ".join(normalise_text(raw or "").split())[:MAX_LABEL_CHARS].strip()
    return label or str(index + 1)


def _one_line(error: BaseException) -> str:
    """A parser's error message made safe to embed in ours: one short line of printable text."""
    return " ".join(normalise_text(first_line(error, 120)).split()) or type(error).__name__


def document_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_pdf(
    path: str | Path,
    *,
    max_bytes: int,
    max_pages: int,
    filename: str | None = None,
    ocr: OcrOptions | None = None,
    progress: OcrProgress | None = None,
) -> ParsedDocument:
    """Read and parse one PDF file; raise `IngestError` with a one-line reason on any problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise IngestError(f"cannot read the file ({error.strerror or error})") from error
    if size > max_bytes:
        raise IngestError(
            f"file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit"
        )
    data = path.read_bytes()
    return parse_pdf(
        data, filename=filename or path.name, max_pages=max_pages, ocr=ocr, progress=progress
    )


def parse_pdf(
    data: bytes,
    *,
    filename: str,
    max_pages: int,
    ocr: OcrOptions | None = None,
    progress: OcrProgress | None = None,
) -> ParsedDocument:
    """Parse a PDF's bytes; `ocr` bounds recognition (its defaults come from the environment)."""
    if not data:
        raise IngestError("file is empty")
    if PDF_MAGIC not in data[:MAGIC_WINDOW]:
        raise IngestError("not a PDF (the file does not start with a PDF header)")
    try:
        pages, scanned = _pages_with_pdfium(data, max_pages, ocr or OcrOptions(), progress)
    except IngestError:
        raise
    except Exception as error:  # PdfiumError, or a decoding error on a damaged file: try pypdf
        # PDFium's error code is its last one in this thread, and some failures set none: after
        # a locked file, an empty or broken one would read as locked too, unless it really is.
        if getattr(error, "err_code", None) == PDFIUM_PASSWORD_ERROR and _is_encrypted(data):
            raise IngestError(
                "password-protected PDF; remove the password and upload again"
            ) from error
        pages, scanned = _pages_with_pypdf(data, max_pages), 0
    parsed = ParsedDocument(document_id(data), filename, len(data), pages)
    if not pages:
        raise IngestError("the PDF has no pages")
    if parsed.empty_pages == len(pages):
        if scanned:
            raise IngestError(
                f"no text on any of its {len(pages)} pages: OCR found none in the scans of "
                f"{scanned} of them (blank, unreadable or damaged images)"
            )
        raise IngestError(
            f"no extractable text on any of its {len(pages)} pages; "
            "it looks scanned, but holds no images to recognise"
        )
    return parsed


def _is_encrypted(data: bytes) -> bool:
    """Whether the file's trailer names an /Encrypt dictionary."""
    try:
        return pypdf.PdfReader(io.BytesIO(data)).is_encrypted
    except Exception:  # unreadable: it is the fallback parser's turn to say why
        return False


def _check_page_count(count: int, max_pages: int) -> None:
    if count > max_pages:
        raise IngestError(f"the PDF has {count} pages, over the {max_pages}-page limit")


def _pages_with_pdfium(
    data: bytes, max_pages: int, ocr: OcrOptions, progress: OcrProgress | None
) -> tuple[list[Page], int]:
    """Every page's text layer in reading order, without running heads; then the pages that
    need it recognised; and how many did."""
    document = pdfium.PdfDocument(data)
    try:
        _check_page_count(len(document), max_pages)
        layouts, scanned = [], []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            layouts.append(page_layout(page, textpage).lines)
            textpage.close()
            if needs_ocr(page, normalise_text(lines_text(layouts[-1]))):
                scanned.append(index)
            page.close()
        running = running_keys(layouts)
        pages = [
            Page(
                index,
                page_label(_pdfium_label(document, index), index),
                normalise_text(lines_text(lines, lambda line: not is_running_head(line, running))),
            )
            for index, lines in enumerate(layouts)
        ]
        for done, index in enumerate(scanned, 1):
            pages[index] = _recognised(document, pages[index], ocr)
            if progress is not None:
                progress(done, len(scanned))
        return pages, len(scanned)
    finally:
        document.close()


def _recognised(document: pdfium.PdfDocument, page: Page, options: OcrOptions) -> Page:
    """The page with its text recognised from its image; `IngestError` naming the page if not."""
    where = f"page {page.page_index + 1}"
    pdf_page = document[page.page_index]
    try:
        result = recognise_page(pdf_page, options)
    except OcrError as error:
        raise IngestError(f"{where}: {error}") from error
    except Exception as error:  # PDFium, OpenCV or onnxruntime on a damaged image
        raise IngestError(f"{where}: its scan cannot be recognised ({_one_line(error)})") from error
    finally:
        pdf_page.close()
    return Page(page.page_index, page.page_label, normalise_text(result.raw_text), result)


def _pdfium_label(document: pdfium.PdfDocument, index: int) -> str | None:
    try:
        return document.get_page_label(index)
    except Exception:  # pypdfium2 cannot decode a label holding a lone surrogate: no label
        return None


def _pages_with_pypdf(data: bytes, max_pages: int) -> list[Page]:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("password-protected PDF; remove the password and upload again")
        _check_page_count(len(reader.pages), max_pages)
        labels = reader.page_labels
        return [
            Page(index, page_label(labels[index], index), normalise_text(page.extract_text() or ""))
            for index, page in enumerate(reader.pages)
        ]
    except IngestError:
        raise
    except Exception as error:  # pypdf raises many types for damaged files
        raise IngestError(f"corrupt or truncated PDF ({_one_line(error)})") from error
