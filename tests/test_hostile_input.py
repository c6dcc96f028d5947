"""Hostile and broken input on the PDF-to-library path (issue 6, part 3).

test_ingest_bad_input.py covers the plain bad files (not a PDF, empty, garbage, locked, scanned,
over the limits). This module builds a nastier corpus itself: files cut at many points, zero-page
and 3000-page PDFs, 200k-character lines, odd Unicode and right-to-left text, hostile file names,
broken cross-reference tables, object streams and page trees; then fuzzes the parse-and-chunk path
(in a subprocess, so a hang is caught) and `Library.ingest` with mutated PDFs.

Every file goes through the real `Library` (Chroma on disk, real embeddings) and must either be
added correctly or fail with one clear line, leaving every store exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2 as pdfium
import pytest
from conftest import REPO_ROOT, cli_env
from helpers import encrypted_pdf, pdf_bytes, write
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from engine.chunking import MAX_CHUNK_CHARS, MAX_CHUNK_TOKENS
from engine.config import Settings
from engine.library import MAX_FILENAME_CHARS, IngestOutcome, Library

ARTIFACTS = REPO_ROOT / "test-artifacts"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
HANG_GUARD_S = 120.0  # generous: only a hang should ever reach it on a busy 2-core machine
FUZZ_EXAMPLE_LIMIT_S = 20.0

GOOD_TEXT = "The quokka clause binds the zanzibar tenant. Rent is due monthly."
PROBE = "quokka zanzibar"  # words only the test documents contain

# Anything that would break a line or a displayed line: C0/C1 controls, separators, surrogates,
# bidi embeddings/overrides/isolates, byte-order marks.
UNSAFE_IN_LINE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufeff]"
)
UNSAFE_IN_TEXT = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufeff]"
)


# -- building hostile PDFs -----------------------------------------------------------------------


def raw_pdf(objects: list[bytes], *, root: int = 1, version: bytes = b"1.4") -> bytes:
    """A hand-written PDF: object i+1 is objects[i], with a correct xref table and trailer."""
    out = bytearray(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    return bytes(out)


def stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), entries, data)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def page_object(parent: int = 2, contents: int = 4, font: int = 5) -> bytes:
    return (
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
        b" /Resources << /Font << /F1 %d 0 R >> >> >>" % (parent, contents, font)
    )


def one_page_pdf(
    pages_node: bytes, text: bytes = b"The quokka clause binds the zanzibar tenant."
) -> bytes:
    """Catalog, the given /Pages node (object 2), a page (3), its content (4), Helvetica (5)."""
    content = b"BT /F1 14 Tf 72 700 Td (%s) Tj ET" % text
    return raw_pdf([CATALOG, pages_node, page_object(), stream(content), HELVETICA])


def mapped_text_pdf(
    prefix: str, units: list[str], suffix: str, *, pypdf_only: bool = False
) -> bytes:
    """One page reading `prefix`, then character codes 0x80+i that the font's /ToUnicode maps to
    `units[i]` (UTF-16BE hex, so any code point, a lone surrogate or NUL included), then `suffix`.

    Such a file really contains that text: it is what a reader copies out of it. With
    `pypdf_only`, the page tree has a dangling first kid, which PDFium refuses and pypdf skips,
    so the text comes through the fallback parser.
    """
    bfchars = b"".join(b"<%02X> <%s>\n" % (0x80 + i, u.encode()) for i, u in enumerate(units))
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n/CMapName /Hostile def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n%d beginbfchar\n%sendbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end" % (len(units), bfchars)
    )
    # the mapped codes sit between two plain letters: PDFium drops a one-code string whose code
    # maps to several code points
    codes = b"41" + b"".join(b"%02X" % (0x80 + i) for i in range(len(units))) + b"5A"
    content = b"BT /F1 14 Tf 72 700 Td (%s) Tj <%s> Tj (%s) Tj ET" % (
        prefix.encode("latin-1"),
        codes,
        suffix.encode("latin-1"),
    )
    widths = b"600 " * 224  # glyphs without widths overlap, and PDFium drops overlapping twins
    font = (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 255"
        b" /Widths [%s] /ToUnicode 6 0 R >>" % widths
    )
    kids = b"[null 3 0 R] /Count 2" if pypdf_only else b"[3 0 R] /Count 1"
    return raw_pdf(
        [
            CATALOG,
            b"<< /Type /Pages /Kids %s >>" % kids,
            page_object(),
            stream(content),
            font,
            stream(cmap),
        ]
    )


def objstm_pdf(corruption: str | None = None) -> bytes:
    """A PDF 1.5 file whose catalog, page tree, page and font live in a compressed object
    stream (object 6), indexed by a cross-reference stream (object 7); optionally broken."""
    members = {
        1: CATALOG,
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: page_object(),
        5: HELVETICA,
    }
    header, body = b"", b""
    for number, member in members.items():
        header += b"%d %d " % (number, len(body))
        body += member + b"\n"
    first, count = len(header), len(members)
    packed = zlib.compress(header + body)
    if corruption == "first":
        first += 7
    elif corruption == "count":
        count = 40
    elif corruption == "deflate":
        packed = packed[:10] + bytes(reversed(packed[10:]))
    elif corruption == "offsets":
        packed = zlib.compress(b"1 0 2 999999 3 -5 5 x " + body)
    content = b"BT /F1 14 Tf 72 700 Td (The quokka clause binds the zanzibar tenant.) Tj ET"
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = {4: len(out)}
    out += b"4 0 obj\n%s\nendobj\n" % stream(content)
    offsets[6] = len(out)
    objstm_entries = b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode" % (count, first)
    out += b"6 0 obj\n%s\nendobj\n" % stream(packed, objstm_entries)
    offsets[7] = len(out)
    rows = [b"\x00" + (0).to_bytes(4, "big") + b"\xff\xff"]
    for number in range(1, 8):
        if number in members:
            container = 6 if corruption != "self" or number != 2 else 2
            index = list(members).index(number)
            rows.append(b"\x02" + container.to_bytes(4, "big") + index.to_bytes(2, "big"))
        else:
            rows.append(b"\x01" + offsets[number].to_bytes(4, "big") + b"\x00\x00")
    xref = b"".join(rows)
    out += b"7 0 obj\n%s\nendobj\n" % stream(xref, b"/Type /XRef /Size 8 /W [1 4 2] /Root 1 0 R ")
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[7]
    return bytes(out)


def font_pdf(lines: list[str]) -> bytes:
    """One page of DejaVu Sans text (which has Hebrew and Arabic glyphs), drawn as given."""
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(DEJAVU)))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=1)
    text = pdf.beginText(40, 800)
    text.setFont("DejaVuSans", 11)
    for line in lines:
        text.textLine(line)
    pdf.drawText(text)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


# -- library state and outcomes ------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryState:
    """Everything a failed ingest must leave exactly as it was."""

    documents: tuple
    page_rows: int
    chunk_rows: int
    vectors: int
    files: tuple[str, ...]
    lexical: tuple[str, ...]


def library_state(library: Library, probe: str = PROBE) -> LibraryState:
    with library.catalog.connect() as db:
        documents = tuple(
            db.execute("SELECT doc_id, filename, status FROM documents ORDER BY doc_id")
        )
        page_rows = db.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
        chunk_rows = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    return LibraryState(
        documents=documents,
        page_rows=page_rows,
        chunk_rows=chunk_rows,
        vectors=library.vectors.count(),
        files=tuple(sorted(p.name for p in library.files_dir.iterdir())),
        lexical=tuple(hit.chunk_id for hit in library.search(probe, k=20, mode="lexical")),
    )


def files_outside(root: Path, library: Path) -> set[Path]:
    """Every file under `root` that is not inside the library folder."""
    return {p for p in root.rglob("*") if library not in p.parents and p != library}


def within(timeout_s: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, failing the test if it has not returned in `timeout_s`."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised below, in the test's thread
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} still running after {timeout_s} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def ingest(library: Library, path: Path, filename: str | None = None) -> IngestOutcome:
    outcome = within(HANG_GUARD_S, library.ingest, path, filename=filename)
    line = outcome.line()
    assert line.splitlines() == [line] and not UNSAFE_IN_LINE.search(line), repr(line)
    assert "Traceback" not in line and len(outcome.message) < 300, line
    return outcome


def assert_fails_cleanly(library: Library, path: Path, reason: str | None = None) -> IngestOutcome:
    before = library_state(library)
    outcome = ingest(library, path)
    assert outcome.status == "failed", outcome.line()
    if reason is not None:
        assert reason in outcome.message, outcome.line()
    assert library_state(library) == before
    return outcome


def assert_stored_correctly(library: Library, outcome: IngestOutcome, source: Path) -> None:
    """An added document is whole in every store, and its chunks are exact slices of pages."""
    assert outcome.status == "added", outcome.line()
    record = library.document(outcome.doc_id)
    assert record is not None and record.status == "ready"
    assert (record.pages, record.chunks) == (outcome.pages, outcome.chunks)
    assert library.vectors.count(outcome.doc_id) == record.chunks
    assert library.pdf_path(outcome.doc_id).read_bytes() == source.read_bytes()
    with library.catalog.connect() as db:
        pages = db.execute(
            "SELECT page_index, page_label, text FROM pages WHERE doc_id = ? ORDER BY page_index",
            (outcome.doc_id,),
        ).fetchall()
        chunks = db.execute(
            "SELECT page_index, char_start, char_end, text FROM chunks WHERE doc_id = ?",
            (outcome.doc_id,),
        ).fetchall()
    assert [index for index, _, _ in pages] == list(range(record.pages))
    assert len(chunks) == record.chunks
    for _, label, text in pages:
        assert not UNSAFE_IN_TEXT.search(text)
        assert label and not UNSAFE_IN_LINE.search(label)
    for page_index, start, end, text in chunks:
        assert pages[page_index][2][start:end] == text
        assert text and len(text) <= MAX_CHUNK_CHARS


def assert_clean_outcome(library: Library, path: Path) -> IngestOutcome:
    """Added correctly, or failed leaving nothing: whichever the file deserves."""
    before = library_state(library)
    outcome = ingest(library, path)
    if outcome.status == "failed":
        assert library_state(library) == before
    else:
        assert_stored_correctly(library, outcome, path)
    return outcome


def lexical_files(library: Library, query: str) -> set[str]:
    return {hit.filename for hit in library.search(query, k=10, mode="lexical")}


@pytest.fixture
def good_pdf(tmp_path: Path) -> Path:
    return write(
        tmp_path / "good-source.pdf", pdf_bytes([GOOD_TEXT, "Second page: the quokka pays."])
    )


# -- broken files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.25, 0.5, 0.75, 0.97, 0.995])
def test_truncated_pdf_is_added_or_refused_cleanly(library, tmp_path, good_pdf, fraction):
    data = good_pdf.read_bytes()
    cut = max(9, int(len(data) * fraction))  # at least "%PDF-1.x\n"
    outcome = assert_clean_outcome(library, write(tmp_path / f"cut-{cut}.pdf", data[:cut]))
    if fraction <= 0.02:  # no page is left
        assert outcome.status == "failed" and "corrupt or truncated" in outcome.message
    elif outcome.status == "added":  # PDFium rebuilt what was left: it must be the real text
        assert lexical_files(library, PROBE) <= {outcome.filename}
        print(f"cut at {cut} of {len(data)} bytes: {outcome.line()}")


@pytest.mark.parametrize("header", [b"", b"%PDF-1.7\n"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_bytes_named_pdf_fail_cleanly(library, tmp_path, header, seed):
    data = header + random.Random(seed).randbytes(20_000)
    reason = "corrupt or truncated" if header else "not a PDF"
    assert_fails_cleanly(library, write(tmp_path / f"random-{seed}.pdf", data), reason)


@pytest.mark.parametrize("algorithm", ["RC4-40", "RC4-128", "AES-128"])
def test_user_password_fails_cleanly_with_any_cipher(library, tmp_path, good_pdf, algorithm):
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(good_pdf))
    writer.encrypt(user_password="pw", owner_password="owner", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    path = write(tmp_path / f"locked-{algorithm}.pdf", buffer.getvalue())
    assert_fails_cleanly(library, path, "password-protected")


def test_encrypted_file_next_to_its_plain_twin(library, tmp_path, good_pdf):
    """The locked copy fails; the plain one is still added afterwards: no state was left."""
    assert_fails_cleanly(
        library, write(tmp_path / "locked.pdf", encrypted_pdf(good_pdf.read_bytes())), "password"
    )
    assert ingest(library, good_pdf).status == "added"


def _pypdf_empty() -> bytes:
    buffer = io.BytesIO()
    pypdf.PdfWriter().write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("pypdf-writer-no-pages", _pypdf_empty),
        ("count-zero", lambda: raw_pdf([CATALOG, b"<< /Type /Pages /Kids [] /Count 0 >>"])),
        ("no-kids-at-all", lambda: raw_pdf([CATALOG, b"<< /Type /Pages /Count 0 >>"])),
    ],
)
def test_pdf_with_zero_pages_fails_cleanly(library, tmp_path, name, make):
    assert_fails_cleanly(library, write(tmp_path / f"{name}.pdf", make()), "no pages")


def test_a_broken_file_read_after_a_locked_one_is_not_called_locked(library, tmp_path, good_pdf):
    """PDFium reports its last error code, which a later failure may leave unchanged: the
    password reason must come from the file itself, not from the one read before it."""
    locked = write(tmp_path / "locked.pdf", encrypted_pdf(good_pdf.read_bytes()))
    assert_fails_cleanly(library, locked, "password-protected")
    assert_fails_cleanly(library, write(tmp_path / "empty-doc.pdf", _pypdf_empty()), "no pages")
    assert_fails_cleanly(library, locked, "password-protected")
    truncated = write(tmp_path / "cut.pdf", good_pdf.read_bytes()[:60])
    outcome = assert_fails_cleanly(library, truncated, "corrupt or truncated")
    assert "password" not in outcome.message


def test_hand_written_zero_page_pdf_without_xref_fails_cleanly(library, tmp_path):
    data = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    data += (
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    outcome = assert_fails_cleanly(library, write(tmp_path / "zero-no-xref.pdf", data))
    assert "no pages" in outcome.message or "corrupt" in outcome.message


@pytest.fixture(scope="module")
def pdf_3000_pages(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many-pages")
    # text on every 100th page (and page 2718) only: 3000 chunks would take minutes to embed
    # here, and what is tested is the page count, not the embedding model
    texts = [
        f"Clause {i} of the quokka lease." if i % 100 == 0 or i == 2718 else None
        for i in range(3000)
    ]
    return write(folder / "3000-pages.pdf", pdf_bytes(texts))


def test_3000_pages_over_a_lowered_limit_are_refused_quickly(library, pdf_3000_pages):
    limited = Library(replace(library.settings, max_pages=1000), embedder=library.embedder)
    started = time.monotonic()
    assert_fails_cleanly(limited, pdf_3000_pages, "3000 pages, over the 1000-page limit")
    print(f"3000-page refusal took {time.monotonic() - started:.2f} s")  # measured, not asserted


def test_3000_pages_under_the_limit_are_all_added(library, pdf_3000_pages):
    started = time.monotonic()
    outcome = ingest(library, pdf_3000_pages)
    print(f"3000-page ingest took {time.monotonic() - started:.1f} s")
    assert_stored_correctly(library, outcome, pdf_3000_pages)
    assert (outcome.pages, outcome.chunks) == (3000, 31)
    assert library.document(outcome.doc_id).empty_pages == 2969
    hit = library.search("Clause 2718 of the quokka lease", k=1, mode="lexical")[0]
    assert hit.page_index == 2718 and hit.page_label == "2719"


# -- long lines ------------------------------------------------------------------------------------


def _assert_chunks_bounded(library: Library, doc_id: str, page_index: int = 0) -> list:
    page = library.page(doc_id, page_index)
    chunks = library.catalog.page_chunks(doc_id, page_index)
    covered = bytearray(len(page.text))
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = b"\x01" * len(chunk.text)
    uncovered = [i for i, ch in enumerate(page.text) if not covered[i] and not ch.isspace()]
    assert uncovered == []  # every character of the page is in some chunk
    for chunk in chunks:
        assert page.text[chunk.char_start : chunk.char_end] == chunk.text
        assert len(library.embedder.token_offsets(chunk.text)) <= MAX_CHUNK_TOKENS
        assert 0 < len(chunk.text) <= MAX_CHUNK_CHARS
    return chunks


@pytest.mark.parametrize("kind", ["one-letter", "random-alphanumeric"])
def test_a_200k_character_line_without_spaces_is_cut_into_bounded_chunks(library, tmp_path, kind):
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    line = (
        "a" * 200_000
        if kind == "one-letter"
        else "".join(rng.choice(letters) for _ in range(200_000))
    )
    path = write(tmp_path / "long-line.pdf", pdf_bytes([line, GOOD_TEXT]))
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    page = library.page(outcome.doc_id, 0)
    # PDFium reads at most 32767 characters of one text-showing operation: what it does read is
    # the start of the line, unchanged
    assert len(page.text) >= 30_000 and line.startswith(page.text)
    chunks = _assert_chunks_bounded(library, outcome.doc_id)
    assert len(chunks) >= len(page.text) // MAX_CHUNK_CHARS
    assert lexical_files(library, PROBE) == {outcome.filename}  # the next page is unharmed


def test_a_line_of_words_without_sentence_punctuation_is_cut_at_word_boundaries(library, tmp_path):
    rng = random.Random(3)
    words = ["tenant", "landlord", "premises", "covenant", "repair", "quokka", "rent", "term"]
    line = " ".join(rng.choice(words) for _ in range(3_000))  # under PDFium's 32767 per string
    path = write(tmp_path / "no-punctuation.pdf", pdf_bytes([line]))
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    page = library.page(outcome.doc_id, 0)
    assert page.text == line
    chunks = _assert_chunks_bounded(library, outcome.doc_id)
    assert len(chunks) > 10
    for chunk in chunks:  # cut between words, never inside one
        assert set(chunk.text.split()) <= set(words)


# -- odd Unicode and right-to-left text ------------------------------------------------------------


HEBREW = "שלום עולם זה מסמך משפטי"
ARABIC = "مرحبا بالعالم هذه وثيقة قانونية"


def test_right_to_left_text_comes_back_in_reading_order_and_searchable(library, tmp_path):
    assert DEJAVU.exists(), "DejaVu Sans (Hebrew and Arabic glyphs) is part of this machine"
    # a PDF holds right-to-left text in visual order, which a PDF writer without bidi support
    # (reportlab here) produces from the reversed string; readers give back the logical order
    lines = [HEBREW[::-1], ARABIC[::-1], "quokka " + "שלום"[::-1] + " zanzibar", GOOD_TEXT]
    path = write(tmp_path / "rtl.pdf", font_pdf(lines))
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    text = library.page(outcome.doc_id, 0).text
    assert text.splitlines()[:3] == [HEBREW, ARABIC, "quokka שלום zanzibar"]
    for query in ("מסמך", "בשלום", "بالعالم", "قانونية"):
        expected = set() if query == "בשלום" else {"rtl.pdf"}  # a word the file does not hold
        assert lexical_files(library, query) == expected, query


def test_combining_marks_and_joiners_are_kept_and_searchable(library, tmp_path):
    lines = [
        "Cafe\u0301 re\u0301sume\u0301 and zalgo z\u0336\u0337a\u0338lgo",
        "joi\u200dner non\u200cjoiner zero\u200bwidth",
        GOOD_TEXT,
    ]
    path = write(tmp_path / "marks.pdf", font_pdf(lines))
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    text = library.page(outcome.doc_id, 0).text
    assert "Café résumé" in text  # NFKC composes the marks
    assert lexical_files(library, "résumé") == {"marks.pdf"}
    assert lexical_files(library, "café") == {"marks.pdf"}


MAPPED_CASES = {
    # name: (UTF-16BE code units the PDF maps its codes to, the text between "quokka" and
    # "zanzibar" without whitespace: "A", what remains of the mapped code points, "Z")
    "nul": (["0000", "0042", "0000"], "ABZ"),
    "emoji-and-zwj-family": (
        ["D83DDC68", "200D", "D83DDC69", "200D", "D83DDC67"],
        "A👨\u200d👩\u200d👧Z",
    ),
    "lone-high-surrogate": (["D800", "0042"], "ABZ"),
    "lone-low-surrogate": (["DFFF"], "AZ"),
    "c0-controls": (["0007", "001B", "0008", "0042"], "ABZ"),
    "c1-controls": (["0085", "009B", "0042"], "ABZ"),
    "line-separators": (["2028", "0042", "2029"], "ABZ"),
    "bidi-override": (["202E", "0066", "0064", "0070", "202C"], "AfdpZ"),
    "bidi-isolates": (["2067", "0042", "2069"], "ABZ"),
    "byte-order-mark": (["FEFF", "0042"], "ABZ"),
    "noncharacters": (["FFFF", "FDD0", "0042"], "ABZ"),
    "combining-pile": (["0041030103010301"], "AÁ\u0301\u0301Z"),
}


@pytest.mark.parametrize("path_kind", ["pdfium", "pypdf-fallback"])
@pytest.mark.parametrize("case", list(MAPPED_CASES))
def test_odd_code_points_inside_the_text_are_stored_safely(library, tmp_path, case, path_kind):
    """Whatever code points a PDF's text maps to, the stored page is printable text and the real
    words around them stay searchable; only characters that carry no text are dropped."""
    units, expected = MAPPED_CASES[case]
    data = mapped_text_pdf(
        "quokka ", units, " zanzibar tenant", pypdf_only=path_kind == "pypdf-fallback"
    )
    if path_kind == "pypdf-fallback":  # PDFium really refuses it, so pypdf reads this text
        with pytest.raises(pdfium.PdfiumError):
            pdfium.PdfDocument(data)[0]
    path = write(tmp_path / f"{case}.pdf", data)
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    assert outcome.pages == 1  # pypdf skips the dangling kid
    text = library.page(outcome.doc_id, 0).text
    assert text.startswith("quokka ") and text.endswith(" zanzibar tenant"), repr(text)
    middle = text.removeprefix("quokka ").removesuffix(" zanzibar tenant")
    assert re.sub(r"\s", "", middle) == expected, repr(middle)
    assert lexical_files(library, PROBE) == {outcome.filename}


def test_text_that_looks_like_escapes_is_kept_literally(library, tmp_path):
    line = r"literal \ud800 and \x00 and \u202e and %00 quokka"
    path = write(tmp_path / "escapes.pdf", pdf_bytes([line]))
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    assert library.page(outcome.doc_id, 0).text == line


@pytest.mark.parametrize(
    "label",
    [
        b"(evil\\n\\r\\000label)",
        b"<FEFF202E0069>",
        b"<FEFFD800>",
        b"(" + b"L" * 5000 + b")",
        b"(   )",
    ],
)
def test_hostile_page_labels_become_short_printable_labels(library, tmp_path, label):
    catalog = b"<< /Type /Catalog /Pages 2 0 R /PageLabels << /Nums [0 << /P %s >>] >> >>" % label
    content = b"BT /F1 14 Tf 72 700 Td (The quokka clause binds the zanzibar tenant.) Tj ET"
    data = raw_pdf(
        [
            catalog,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page_object(),
            stream(content),
            HELVETICA,
        ]
    )
    path = write(tmp_path / "labels.pdf", data)
    outcome = ingest(library, path)
    assert_stored_correctly(library, outcome, path)
    (hit,) = library.search(PROBE, k=1, mode="lexical")
    assert 0 < len(hit.page_label) <= 32 and hit.page_label.strip() == hit.page_label


# -- file names -----------------------------------------------------------------------------------


HOSTILE_NAMES = {
    "dot-dot": "../../../outside.pdf",
    "absolute": "/etc/cron.d/evil.pdf",
    "windows": "C:\\Windows\\System32\\evil.pdf",
    "nul": "in\x00side.pdf",
    "newline": "two\nlines\r.pdf",
    "controls": "bell\x07esc\x1b[31mtab\t.pdf",
    "c1-and-separators": "nel\x85csi\x9bsep\u2028par\u2029.pdf",
    "rtl-override": "invoice\u202efdp.exe",
    "bidi-isolates": "a\u2066b\u2067c\u2068d\u2069.pdf",
    "lone-surrogates": "\udcff\udcfe-latin1.pdf",
    "dots-only": "..",
    "very-long": "x" * 1000 + ".pdf",
    "long-wide": "ש" * 1000 + ".pdf",
    "long-suffix": "y" * 300 + "." + "z" * 300,
}


def assert_safe_filename(name: str) -> None:
    assert name and "/" not in name and "\\" not in name and name.strip(".")
    assert not UNSAFE_IN_LINE.search(name) and not re.search(r"[\u061c\u200e\u200f]", name)
    assert len(name) <= MAX_FILENAME_CHARS
    name.encode("utf-8")  # storable and printable


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_hostile_upload_names_are_stored_safely_and_nothing_is_written_outside(
    library, tmp_path, good_pdf, case
):
    raw = HOSTILE_NAMES[case]
    outside_before = files_outside(tmp_path, library.root)
    outcome = within(HANG_GUARD_S, library.ingest, good_pdf, filename=raw)
    assert outcome.status == "added", outcome.line()
    assert_safe_filename(outcome.filename)
    if raw.endswith(".pdf"):
        assert outcome.filename.endswith(".pdf")
    (record,) = library.documents()
    assert record.filename == outcome.filename
    assert {hit.filename for hit in library.search(PROBE, k=3)} == {outcome.filename}
    assert library.pdf_path(outcome.doc_id).parent == library.files_dir
    assert [p.name for p in library.files_dir.iterdir()] == [f"{outcome.doc_id}.pdf"]
    assert files_outside(tmp_path, library.root) == outside_before
    assert (
        not Path("/etc/cron.d/evil.pdf").exists() and not (tmp_path.parent / "outside.pdf").exists()
    )
    line = outcome.line()
    assert line.splitlines() == [line]


def test_hostile_name_on_a_bad_file_is_safe_in_the_failure_line(library, tmp_path):
    before = library_state(library)
    outcome = within(
        HANG_GUARD_S,
        library.ingest,
        write(tmp_path / "x.pdf", b"nope"),
        filename="a\nb\u202e/../c\x00.pdf",
    )
    assert (
        outcome.status == "failed"
        and outcome.line() == "failed: c.pdf: not a PDF (the file does not start with a PDF header)"
    )
    assert library_state(library) == before


def test_expected_names_for_some_hostile_inputs(library, good_pdf):
    names = {
        case: library.ingest(good_pdf, filename=HOSTILE_NAMES[case]).filename
        for case in HOSTILE_NAMES
    }
    assert names["dot-dot"] == "outside.pdf"
    assert names["windows"] == "evil.pdf"
    assert names["nul"] == "inside.pdf"
    assert names["rtl-override"] == "invoicefdp.exe"
    assert names["lone-surrogates"] == "\ufffd\ufffd-latin1.pdf"
    assert names["dots-only"] == "document.pdf"
    assert names["very-long"] == "x" * (MAX_FILENAME_CHARS - 4) + ".pdf"


# -- broken structure ----------------------------------------------------------------------------


def _deep_page_tree(depth: int) -> bytes:
    objects = [CATALOG]
    for level in range(depth):
        objects.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (level + 3))
    content = len(objects) + 2
    objects.append(page_object(parent=len(objects), contents=content, font=content + 1))
    objects.append(stream(b"BT /F1 14 Tf 72 700 Td (The quokka clause.) Tj ET"))
    objects.append(HELVETICA)
    return raw_pdf(objects)


def _good_one_page() -> bytes:
    return one_page_pdf(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")


STRUCTURE_CASES: dict[str, Callable[[], bytes]] = {
    "kids-self-reference": lambda: raw_pdf([CATALOG, b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]),
    "kids-self-and-page": lambda: one_page_pdf(b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>"),
    "kids-mutual-cycle": lambda: raw_pdf(
        [
            CATALOG,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    ),
    "page-parent-cycle": lambda: one_page_pdf(
        b"<< /Type /Pages /Kids [3 0 R 2 0 R 3 0 R] /Count 3 >>"
    ),
    "page-tree-3000-deep": lambda: _deep_page_tree(3000),
    "kids-dangling": lambda: one_page_pdf(b"<< /Type /Pages /Kids [99 0 R 3 0 R] /Count 2 >>"),
    "kids-not-an-array": lambda: one_page_pdf(b"<< /Type /Pages /Kids 3 0 R /Count 1 >>"),
    "count-huge": lambda: one_page_pdf(b"<< /Type /Pages /Kids [3 0 R] /Count 2147483647 >>"),
    "count-negative": lambda: one_page_pdf(b"<< /Type /Pages /Kids [3 0 R] /Count -3 >>"),
    "xref-garbage": lambda: re.sub(
        rb"xref\n.*?trailer", b"xref\n0 6\ngarbage rows\ntrailer", _good_one_page(), flags=re.S
    ),
    "xref-offsets-wrong": lambda: re.sub(
        rb"\d{10} 00000 n", b"0000099999 00000 n", _good_one_page()
    ),
    "startxref-wrong": lambda: re.sub(
        rb"startxref\n\d+", b"startxref\n999999999", _good_one_page()
    ),
    "startxref-negative": lambda: re.sub(rb"startxref\n\d+", b"startxref\n-1", _good_one_page()),
    "xref-missing": lambda: _good_one_page().split(b"xref\n")[0] + b"%%EOF\n",
    "stream-length-wrong": lambda: _good_one_page().replace(b"/Length ", b"/Length 9999"),
    "stream-unterminated": lambda: _good_one_page().replace(b"endstream", b"endstrxxx"),
    "deeply-nested-arrays": lambda: raw_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * 50_000 + b"]" * 50_000 + b" >>"]
        + [
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page_object(),
            stream(b"BT /F1 14 Tf 72 700 Td (The quokka clause.) Tj ET"),
            HELVETICA,
        ]
    ),
    "deeply-nested-dicts": lambda: one_page_pdf(
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /X " + b"<< /A " * 20_000 + b">> " * 20_000 + b">>"
    ),
    "flate-garbage": lambda: raw_pdf(
        [
            CATALOG,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page_object(),
            stream(random.Random(11).randbytes(500), b"/Filter /FlateDecode "),
            HELVETICA,
        ]
    ),
    "objstm-intact": lambda: objstm_pdf(None),
    "objstm-wrong-first": lambda: objstm_pdf("first"),
    "objstm-wrong-count": lambda: objstm_pdf("count"),
    "objstm-bad-deflate": lambda: objstm_pdf("deflate"),
    "objstm-bad-offsets": lambda: objstm_pdf("offsets"),
    "objstm-holds-itself": lambda: objstm_pdf("self"),
}


@pytest.mark.parametrize("case", list(STRUCTURE_CASES))
def test_broken_structure_never_hangs_or_crashes(library, tmp_path, case):
    path = write(tmp_path / f"{case}.pdf", STRUCTURE_CASES[case]())
    started = time.monotonic()
    outcome = assert_clean_outcome(library, path)
    print(f"{case}: {outcome.line()} ({time.monotonic() - started:.2f} s)")
    if outcome.status == "added":  # whatever was read must be the real text
        assert lexical_files(library, "quokka clause") == {outcome.filename}
    if case == "objstm-intact":
        assert outcome.status == "added"


# -- the command line, good and bad files together -------------------------------------------


def test_cli_mixed_batch_adds_the_good_and_names_each_bad_one(tmp_path, good_pdf):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good_two = write(inputs / "second-good.pdf", pdf_bytes(["The zanzibar tenant keeps a quokka."]))
    odd_name = write(
        inputs / "odd\nname\u202egnp.pdf", pdf_bytes(["The quokka appendix, odd name."])
    )
    bad = {
        "truncated.pdf": good_pdf.read_bytes()[:400],
        "random.pdf": random.Random(5).randbytes(5000),
        "locked.pdf": encrypted_pdf(good_pdf.read_bytes()),
        "zero-pages.pdf": _pypdf_empty(),
        "self-kids.pdf": STRUCTURE_CASES["kids-self-reference"](),
        "empty.pdf": b"",
    }
    bad_paths = [write(inputs / name, data) for name, data in bad.items()]
    latin1 = os.path.join(os.fsencode(inputs), b"caf\xe9-bad.pdf")  # not valid UTF-8
    with open(latin1, "wb") as handle:
        handle.write(b"%PDF-1.4\n" + b"\x00" * 100)
    dotted = inputs / "sub" / ".." / good_pdf.name  # a path through "..": still the one file
    (inputs / "sub").mkdir()
    good_pdf.rename(inputs / good_pdf.name)
    library = tmp_path / "library"
    args = [dotted, good_two, odd_name, *bad_paths]
    outside_before = files_outside(tmp_path, library)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "engine", "ingest", *map(os.fsencode, args), latin1],
        cwd=REPO_ROOT,
        env=cli_env(library),
        capture_output=True,
        timeout=300,  # the hang guard
    )
    print(f"CLI batch of {len(args) + 1} files took {time.monotonic() - started:.1f} s")
    stdout, stderr = result.stdout.decode("utf-8"), result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    lines = stdout.splitlines()
    assert len(lines) == len(args) + 1, stdout
    assert all(not UNSAFE_IN_LINE.search(line) for line in lines), lines
    added = [line for line in lines if line.startswith("added: ")]
    failed = [line for line in lines if line.startswith("failed: ")]
    assert [line.split(": ")[1] for line in added] == [
        "good-source.pdf",
        "second-good.pdf",
        "oddnamegnp.pdf",
    ]
    reasons = {line.split(": ")[1]: line.split(": ", 2)[2] for line in failed}
    assert set(reasons) == {*bad, "caf\ufffd-bad.pdf"}, failed
    assert reasons["truncated.pdf"].startswith("corrupt or truncated PDF")
    assert reasons["random.pdf"].startswith("not a PDF")
    assert reasons["locked.pdf"].startswith("password-protected")
    assert reasons["zero-pages.pdf"] == "the PDF has no pages"
    assert reasons["empty.pdf"] == "file is empty"
    # DESIGN section 3: exit 0 when at least one file was readable, 1 when every file failed;
    # which ones failed is in the per-file lines
    assert result.returncode == 0

    assert files_outside(tmp_path, library) == outside_before
    opened = Library(Settings(library_dir=library), embedder=None)
    records = opened.documents()
    assert sorted(r.filename for r in records) == [
        "good-source.pdf",
        "oddnamegnp.pdf",
        "second-good.pdf",
    ]
    assert opened.vectors.count() == sum(r.chunks for r in records)
    assert sorted(p.name for p in opened.files_dir.iterdir()) == sorted(
        f"{r.doc_id}.pdf" for r in records
    )
    with opened.catalog.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == sum(
            r.pages for r in records
        )


# -- fuzzing ---------------------------------------------------------------------------------------


def _seed_pdfs() -> list[bytes]:
    """Small valid PDFs of different makes: reportlab with and without compressed content,
    pypdf's rewrite, a hand-written one and one with an object stream."""
    plain = pdf_bytes([GOOD_TEXT, "Second page.\nThe quokka pays (rent) on time. e.g. 4.2 §"])
    uncompressed = io.BytesIO()
    pdf = canvas.Canvas(uncompressed, invariant=1, pageCompression=0)
    for text in (GOOD_TEXT, "No. 4.2 (b) the quokka, e.g. the tenant. Dr. Who pays rent!"):
        lines = pdf.beginText(72, 700)
        for sentence in text.split(". "):
            lines.textLine(sentence + ".")
        pdf.drawText(lines)
        pdf.showPage()
    pdf.save()
    rewritten = io.BytesIO()
    pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(plain))).write(rewritten)
    return [plain, uncompressed.getvalue(), rewritten.getvalue(), _good_one_page(), objstm_pdf()]


SEEDS = _seed_pdfs()
TOKENS = [
    b"obj",
    b"endobj",
    b" 0 R",
    b"<<",
    b">>",
    b"[",
    b"]",
    b"(",
    b")",
    b"\\",
    b"\x00",
    b"\n",
    b"/Count 0",
    b"/Count -1",
    b"/Count 99999999",
    b"/Kids [2 0 R]",
    b"/Kids [1 0 R 1 0 R]",
    b"/Parent 2 0 R",
    b"/Type /Pages",
    b"/Type /Page",
    b"stream\n",
    b"endstream",
    b"xref",
    b"trailer",
    b"startxref",
    b"%%EOF",
    b"/Length 0",
    b"/Length 99999999",
    b"/Filter /FlateDecode",
    b"9999999999",
    b"-1",
    b"1e308",
    b"/Encrypt 3 0 R",
    b"/ObjStm",
    b"/Prev 0",
    b"/Root 2 0 R",
    b"/PageLabels",
    b"<FEFFD800>",
    b"Tj",
    b"TJ",
    b"BT",
    b"ET",
    b"Td",
    b"/F1 1e30 Tf",
]
POSITIONS = st.integers(0, 2**20)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), POSITIONS, st.integers(0, 7)),
    st.tuples(st.just("delete"), POSITIONS, st.integers(1, 64)),
    st.tuples(
        st.just("insert"), POSITIONS, st.binary(min_size=1, max_size=16) | st.sampled_from(TOKENS)
    ),
    st.tuples(st.just("overwrite"), POSITIONS, st.sampled_from(TOKENS)),
    # into the text a page shows, so that damaged text, not only damaged structure, is chunked
    st.tuples(st.just("text"), POSITIONS, st.binary(min_size=1, max_size=400)),
    st.tuples(st.just("truncate"), POSITIONS),
    st.tuples(
        st.just("splice"), POSITIONS, st.integers(0, len(SEEDS) - 1), POSITIONS, st.integers(1, 512)
    ),
)
MUTATED_PDFS = st.tuples(st.integers(0, len(SEEDS) - 1), st.lists(MUTATION, min_size=1, max_size=6))


def mutate(seed_index: int, mutations: list[tuple]) -> bytes:
    data = bytearray(SEEDS[seed_index])
    for kind, position, *rest in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << rest[0]
        elif kind == "delete":
            del data[at : at + rest[0]]
        elif kind == "insert":
            data[at:at] = rest[0]
        elif kind == "overwrite":
            data[at : at + len(rest[0])] = rest[0]
        elif kind == "text":
            ends = [match.start() for match in re.finditer(rb"\) ?Tj", data)]
            if ends:
                end = ends[position % len(ends)]
                data[end:end] = re.sub(rb"[()\\]", b"", rest[0])  # stays inside the string
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            donor = SEEDS[rest[0]]
            start = rest[1] % len(donor)
            data[at:at] = donor[start : start + rest[2]]
    return bytes(data)


def save_artifact(kind: str, data: bytes) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"hostile-fuzz-{kind}-{hashlib.sha256(data).hexdigest()[:12]}.pdf"
    path.write_bytes(data)
    return path


class ParseWorker:
    """tests/hostile_fuzz_worker.py in a subprocess, restarted after a hang is killed."""

    def __init__(self, log: Path):
        self.log = log
        self.process: subprocess.Popen | None = None
        self.replies: queue.Queue[str] = queue.Queue()

    def _start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "hostile_fuzz_worker.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,  # pypdf's warnings; a pipe nobody reads would fill and block
                env=cli_env(self.log.parent / "unused-library"),
            )
        self.replies = queue.Queue()
        stdout = self.process.stdout

        def pump() -> None:
            for line in stdout:
                self.replies.put(line.decode())

        threading.Thread(target=pump, daemon=True).start()
        ready = json.loads(self.replies.get(timeout=180))
        assert ready == {"status": "ready"}

    def parse(self, data: bytes, timeout_s: float) -> dict:
        """The worker's reply, or `{"status": "hang"}` when it did not answer in time (it is
        then killed), or `{"status": "died"}` when it exited (a crash in native code)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(len(data).to_bytes(4, "big") + data)
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return json.loads(self.replies.get(timeout=0.2))
            except queue.Empty:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    return {"status": "died", "returncode": code}
        self.close()
        return {"status": "hang"}

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def parse_worker(tmp_path_factory):
    worker = ParseWorker(tmp_path_factory.mktemp("fuzz-worker") / "worker-stderr.log")
    yield worker
    worker.close()


FUZZ_COUNTS: dict[str, int] = {}


FUZZ_SETTINGS = {
    "deadline": None,  # the time limit is the worker's hang guard; hypothesis' own would flake
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
    # no shrinking: a hang costs the whole time limit per attempt, and the failing input is
    # saved to test-artifacts/ as it is
    "phases": [Phase.explicit, Phase.generate],
}


# HOSTILE_FUZZ_SCALE=20 runs 20 times as many examples (a longer campaign, outside CI)
FUZZ_SCALE = max(1, int(os.environ.get("HOSTILE_FUZZ_SCALE", "1")))


@settings(max_examples=150 * FUZZ_SCALE, **FUZZ_SETTINGS)
@given(mutated=MUTATED_PDFS)
def test_fuzz_parse_and_chunk_never_hangs_or_crashes(parse_worker, embedder, mutated):
    data = mutate(*mutated)
    reply = parse_worker.parse(data, FUZZ_EXAMPLE_LIMIT_S)
    FUZZ_COUNTS[reply["status"]] = FUZZ_COUNTS.get(reply["status"], 0) + 1
    if reply["status"] == "hang":
        path = save_artifact("hang", data)
        pytest.fail(
            f"parsing and chunking ran over {FUZZ_EXAMPLE_LIMIT_S} s; input saved to {path}"
        )
    if reply["status"] == "died":
        path = save_artifact("died", data)
        pytest.fail(f"the parser process died ({reply['returncode']}); input saved to {path}")
    if reply["status"] == "bug":
        path = save_artifact("crash", data)
        pytest.fail(
            f"{reply['type']} escaped the engine (input saved to {path}):\n{reply['traceback']}"
        )
    if reply["status"] == "refused":
        message = reply["message"]
        assert reply["type"] == "IngestError"
        assert message.splitlines() == [message] and not UNSAFE_IN_LINE.search(message), repr(
            message
        )
        return
    pages = reply["pages"]
    assert any(text.strip() for _, text in pages)  # all-empty files are refused as scanned
    for label, text in pages:
        assert label and not UNSAFE_IN_LINE.search(label) and len(label) <= 32
        assert not UNSAFE_IN_TEXT.search(text)
    for page_index, start, end, chunk_text in reply["chunks"]:
        assert (
            pages[page_index][1][start:end] == chunk_text and chunk_text.strip() == chunk_text != ""
        )
        assert len(chunk_text) <= MAX_CHUNK_CHARS
        assert len(embedder.token_offsets(chunk_text)) <= MAX_CHUNK_TOKENS


def test_fuzz_counts_report():
    """Not a check: prints how the parse fuzz examples ended (run with -s to see it)."""
    print(f"parse fuzz outcomes: {FUZZ_COUNTS}")


@pytest.fixture(scope="module")
def fuzz_library(tmp_path_factory, embedder) -> Library:
    return Library(Settings(library_dir=tmp_path_factory.mktemp("fuzz-library")), embedder=embedder)


INGEST_COUNTS: dict[str, int] = {}


@settings(max_examples=30 * FUZZ_SCALE, **FUZZ_SETTINGS)
@given(mutated=MUTATED_PDFS)
def test_fuzz_library_ingest_stores_whole_documents_or_nothing(
    fuzz_library, tmp_path_factory, mutated
):
    data = mutate(*mutated)
    path = write(tmp_path_factory.getbasetemp() / "fuzz-input.pdf", data)
    before = library_state(fuzz_library)
    try:
        outcome = ingest(fuzz_library, path)
    except BaseException:
        save_artifact("ingest", data)
        raise
    INGEST_COUNTS[outcome.status] = INGEST_COUNTS.get(outcome.status, 0) + 1
    if outcome.status == "failed":
        assert library_state(fuzz_library) == before, save_artifact("partial", data)
        return
    if outcome.status == "added":
        assert_stored_correctly(fuzz_library, outcome, path)
        assert fuzz_library.delete(outcome.doc_id)  # back to an empty library for the next one
    assert library_state(fuzz_library) == before


def test_fuzz_ingest_counts_report():
    """Not a check: prints how the ingest fuzz examples ended (run with -s to see it)."""
    print(f"ingest fuzz outcomes: {INGEST_COUNTS}")
