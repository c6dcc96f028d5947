"""Reading order, running heads and tables on text-layer PDFs the tests build with reportlab."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from conftest import CORPUS_DIR, requires_corpus
from helpers import write
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from reportlab.platypus import Table, TableStyle

from engine import page_images
from engine.chunking import chunk_pages
from engine.documents import parse_pdf
from engine.layout import page_layout

WIDTH, HEIGHT = A4
LEFT_X, RIGHT_X, COLUMN_CHARS = 60, 310, 42
LEFT_SENTENCES = [
    "The tenant shall keep the premises in good repair throughout the term.",
    "Rent is payable quarterly in advance on the usual quarter days.",
    "The landlord may enter on reasonable notice to inspect the state of repair.",
    "Any dispute about the service charge is referred to an independent surveyor.",
]
RIGHT_SENTENCES = [
    "The quokka colony on the northern lawn must not be disturbed.",
    "Assignment of this lease needs the prior written consent of the landlord.",
    "Insurance of the building is arranged by the landlord at the tenant's cost.",
    "This lease is governed by the law of the Kestrel Islands.",
]
HEADER = "KESTREL LEASE — CONFIDENTIAL DRAFT"
FOOTER = "Printed 4 December 2026 for the tenant's solicitors"
CELLS = [
    ["Unit", "Tenant", "Annual rent"],
    ["A1", "Harbor Freight Logistics", "£41,250"],
    ["B7", "Ashgrove Medical Devices", "£18,900"],
    ["C3", "Zanzibar Quokka Imports", "£27,615"],
]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _wrapped(sentences: list[str]) -> list[str]:
    return textwrap.wrap(" ".join(sentences), COLUMN_CHARS)


def two_column_pdf(pages: int = 1, running_heads: bool = False, table: bool = False) -> bytes:
    """Pages with two columns drawn line by line across both (left line, then the right line
    beside it), as patents are: PDFium's own order interleaves the columns."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    left, right = _wrapped(LEFT_SENTENCES), _wrapped(RIGHT_SENTENCES)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica", 10)
        if running_heads:
            pdf.drawCentredString(WIDTH / 2, HEIGHT - 40, HEADER)
            pdf.drawString(LEFT_X, 40, FOOTER)
            pdf.drawRightString(WIDTH - 60, 40, str(number))
        y = HEIGHT - 90
        for left_line, right_line in zip(left, right, strict=False):
            pdf.drawString(LEFT_X, y, left_line)
            pdf.drawString(RIGHT_X, y, right_line)
            y -= 13
        for extra in left[len(right) :]:
            pdf.drawString(LEFT_X, y, extra)
            y -= 13
        if table:
            grid = Table(CELLS, colWidths=[60, 200, 100])
            grid.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey)]))
            grid.wrapOn(pdf, WIDTH, HEIGHT)
            grid.drawOn(pdf, LEFT_X, y - 100)
            pdf.drawString(LEFT_X, y - 130, "The schedule of units above forms part of this lease.")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def parsed(data: bytes):
    return parse_pdf(data, filename="lease.pdf", max_pages=100)


def test_pdfium_alone_interleaves_the_columns():
    """The premise of the tests below: without layout the sentences come out broken."""
    document = pdfium.PdfDocument(two_column_pdf())
    raw = _flat(document[0].get_textpage().get_text_range())
    document.close()
    assert not any(sentence in raw for sentence in LEFT_SENTENCES + RIGHT_SENTENCES)


def test_a_two_column_page_reads_column_by_column():
    text = _flat(parsed(two_column_pdf()).pages[0].text)
    positions = [text.find(sentence) for sentence in LEFT_SENTENCES + RIGHT_SENTENCES]
    assert -1 not in positions, text
    assert positions == sorted(positions)


def test_running_heads_and_page_numbers_are_kept_out_of_chunks(embedder):
    document = parsed(two_column_pdf(pages=3, running_heads=True))
    chunks = chunk_pages(document.doc_id, document.pages, embedder.token_offsets)
    joined = "\n".join(chunk.text for chunk in chunks)
    assert HEADER not in joined and "KESTREL" not in joined
    assert "Printed" not in joined and "solicitors" not in joined
    for page in document.pages:
        assert not re.search(r"^\d+$", page.text, re.MULTILINE), page.text
        assert LEFT_SENTENCES[0] in _flat(page.text)
    assert [page.page_label for page in document.pages] == ["1", "2", "3"]
    for chunk in chunks:
        page = document.pages[chunk.page_index]
        assert page.text[chunk.char_start : chunk.char_end] == chunk.text


def test_a_lone_line_at_the_top_of_every_page_is_text_not_a_running_head():
    document = parsed(two_column_pdf(pages=2, running_heads=False))
    assert all(LEFT_SENTENCES[0] in _flat(page.text) for page in document.pages)


def test_a_heading_that_opens_a_few_pages_is_kept_but_a_footer_on_all_is_not():
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for number in range(8):
        pdf.setFont("Helvetica", 10)
        if number in (1, 4):
            pdf.drawString(LEFT_X, HEIGHT - 50, f"Section {number + 4}")
        for line, text in enumerate(_wrapped(LEFT_SENTENCES)):
            pdf.drawString(LEFT_X, HEIGHT - 120 - 13 * line, text)
        pdf.drawString(LEFT_X, 30, "Confidential: not for circulation")
        pdf.showPage()
    pdf.save()
    pages = parsed(buffer.getvalue()).pages
    assert pages[1].text.startswith("Section 5") and pages[4].text.startswith("Section 8")
    assert not any("Confidential" in page.text for page in pages)


def test_a_ruled_table_is_one_markdown_chunk(embedder):
    document = parsed(two_column_pdf(table=True))
    page = document.pages[0]
    chunks = chunk_pages(document.doc_id, document.pages, embedder.token_offsets)
    tables = [chunk for chunk in chunks if chunk.text.startswith("|")]
    assert len(tables) == 1
    lines = tables[0].text.splitlines()
    assert lines[0] == "| Unit | Tenant | Annual rent |"
    assert lines[1] == "| --- | --- | --- |"
    assert lines[2:] == [f"| {' | '.join(row)} |" for row in CELLS[1:]]
    assert page.text[tables[0].char_start : tables[0].char_end] == tables[0].text
    assert "forms part of this lease" in page.text[tables[0].char_end :]


def test_a_table_without_rules_is_found_by_its_aligned_columns():
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setFont("Helvetica", 10)
    pdf.drawString(60, 760, "Schedule of units let under this lease, by floor.")
    for row, cells in enumerate(CELLS):
        for x, cell in zip((60, 160, 400), cells, strict=True):
            pdf.drawString(x, 730 - 16 * row, cell)
    pdf.drawString(60, 640, "No other units are let.")
    pdf.showPage()
    pdf.save()
    text = parsed(buffer.getvalue()).pages[0].text
    assert "| B7 | Ashgrove Medical Devices | £18,900 |" in text.splitlines()
    assert text.splitlines()[-1] == "No other units are let."


def test_a_search_on_one_cell_finds_the_whole_table_and_it_is_highlighted(library, tmp_path):
    path = write(tmp_path / "lease.pdf", two_column_pdf(table=True))
    outcome = library.ingest(path)
    assert outcome.status == "added", outcome.line()
    hits = library.search("Zanzibar Quokka Imports", k=3, mode="hybrid")
    assert hits and hits[0].text.startswith("| Unit | Tenant | Annual rent |")
    assert all(cell in hits[0].text for row in CELLS for cell in row)
    page = library.page(hits[0].doc_id, hits[0].page_index)
    assert page.text[hits[0].char_start : hits[0].char_end] == hits[0].text
    document = pdfium.PdfDocument(str(library.pdf_path(hits[0].doc_id)))
    try:
        page = document[0]
        quads = page_images.text_layer_quads(page, page.get_textpage(), hits[0].text)
    finally:
        document.close()
    middles = sorted((quad[0][1] + quad[2][1]) / 2 for quad in quads)
    rows = 1 + sum(1 for a, b in zip(middles, middles[1:], strict=False) if b - a > 8)
    assert rows == len(CELLS)  # every row of the table is marked


def test_a_sentence_across_a_column_line_break_is_highlighted(tmp_path):
    path = write(tmp_path / "lease.pdf", two_column_pdf())
    document = pdfium.PdfDocument(str(path))
    try:
        page = document[0]
        quads = page_images.text_layer_quads(page, page.get_textpage(), RIGHT_SENTENCES[1])
    finally:
        document.close()
    assert quads and min(quad[0][0] for quad in quads) >= RIGHT_X - 1


def test_a_long_quote_is_highlighted_whole_not_only_its_ends():
    quote = " ".join(f"word{i}" for i in range(60))
    raw = f"Before it. {quote.replace(' ', chr(10), 7)} After it."
    ranges = page_images.find_quote(raw, "| " + quote.replace("word30", "w0rd30") + " |")
    assert ranges == [(raw.index("word0"), raw.index("word59") + len("word59"))]


@requires_corpus
@pytest.mark.corpus
def test_the_patents_columns_no_longer_interleave():
    """Page 21 of the patent: PDFium reads each left-column line with the right-column line
    beside it ("... a non - provisional application frames of data , the request ...")."""
    document = pdfium.PdfDocument(str(Path(CORPUS_DIR) / "us-patent-10510317.pdf"))
    try:
        page = document[20]
        text = _flat(page_layout(page, page.get_textpage()).text_with_origins()[0])
    finally:
        document.close()
    assert (
        "The present application is a non - provisional application claiming the benefit of "
        "U.S. Provisional Application No. 62 / 345,539 filed on Jun . 3 , 2016" in text
    )
    assert "One embodiment provides for a display system to gener" in text
    assert " 10 presentation time" not in text  # the gutter's line numbers are left out
