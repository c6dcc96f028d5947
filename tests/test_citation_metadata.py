"""Citation metadata: read at ingest from a PDF's document information and first page, kept in
the catalog, edited by the user, filled from a .bib beside the PDFs and written back as BibTeX."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from helpers import pdf_bytes
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from engine.bib_import import import_bib_file
from engine.bibtex import parse_bibtex, to_bibtex
from engine.catalog import CATALOG_FILE
from engine.cli import main
from engine.library import Library
from engine.metadata import DocumentMetadata, MetadataError
from engine.pdf_metadata import extract_metadata

PAPER_TITLE = "Remasking Schedules for Masked Diffusion Drafting"
CONTRACT_TEXT = [
    "This Agreement is dated 3 February 2025 and is made between:",
    "(1) Quillfeather Publishing Ltd, a company incorporated in Scotland (the Publisher); and",
    "(2) Orrin Vale, of 4 Mill Lane, Perth (the Author).",
    "1. Grant of rights",
    "1.1 The Author grants the Publisher the exclusive right to publish the Work.",
]


def build_pdf(
    lines: list[tuple[str, float]], info: dict[str, str] | None = None, pages: int = 1
) -> bytes:
    """A PDF whose first page shows `lines` (text, font size) from the top; `info` is its
    document information (Title, Author, Subject)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for name, value in (info or {}).items():
        getattr(pdf, f"set{name}")(value)
    y = 800.0
    for text, size in lines:
        y -= size * 1.8  # the line's own height above its baseline, so lines never overlap
        pdf.setFont("Helvetica-Bold" if size > 12 else "Helvetica", size)
        pdf.drawString(60, y, text)
    for number in range(1, pages):
        pdf.showPage()
        pdf.setFont("Helvetica", 10)
        pdf.drawString(60, 780, f"Page {number + 1} of the document, with more body text.")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def paper_pdf(info_title: str = "") -> bytes:
    return build_pdf(
        [
            ("Journal of Computational Drafting 3 (2025)", 8),
            (PAPER_TITLE, 18),
            ("Ines Marlow and Teodor Baptiste", 11),
            ("Department of Law, Eastfield University", 10),
            ("Abstract. We compare two remasking schedules on forty drafting tasks.", 10),
            ("https://doi.org/10.5555/jcd.2025.0042.", 10),
        ],
        {"Title": info_title, "Author": "Ines Marlow; Teodor Baptiste"} if info_title else None,
    )


def contract_pdf() -> bytes:
    lines = [("PUBLISHING AGREEMENT", 16)] + [(line, 10) for line in CONTRACT_TEXT]
    return build_pdf(lines, {"Title": "Microsoft Word - pubagr_v3.docx", "Author": "clerk"})


# --- extraction -----------------------------------------------------------------------------


def test_a_papers_title_authors_and_doi_come_from_its_first_page(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(paper_pdf())

    metadata = extract_metadata(path)

    assert metadata.title == PAPER_TITLE  # the largest line, not the running header above it
    assert metadata.authors == ("Ines Marlow", "Teodor Baptiste")
    assert metadata.doi == "10.5555/jcd.2025.0042"  # the final full stop is not part of it
    assert metadata.parties == () and metadata.date == ""


def test_document_information_gives_the_title_unless_the_page_extends_it(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(paper_pdf(info_title="Remasking schedules"))
    assert extract_metadata(path).title == PAPER_TITLE  # the page's title has more

    path.write_bytes(paper_pdf(info_title="A Study of Schedules"))
    assert extract_metadata(path).title == "A Study of Schedules"


def test_an_instruments_parties_and_date_come_from_its_first_page(tmp_path: Path) -> None:
    path = tmp_path / "contract.pdf"
    path.write_bytes(contract_pdf())

    metadata = extract_metadata(path)

    # the document information's title is a word processor's file name: the page's wins
    assert metadata.title == "Publishing Agreement"
    assert metadata.parties == ("Quillfeather Publishing Ltd", "Orrin Vale")
    assert metadata.date == "2025-02-03" and metadata.issued_year == "2025"
    assert metadata.authors == ()  # the PDF's author ("clerk") did not make the contract


def test_a_scanned_first_page_is_read_from_its_ocr_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf_bytes([None]))  # a page with no text layer

    metadata = extract_metadata(path, first_page_text="\n".join(CONTRACT_TEXT))

    assert metadata.parties == ("Quillfeather Publishing Ltd", "Orrin Vale")
    assert metadata.date == "2025-02-03"


def test_a_file_that_is_not_a_pdf_gives_empty_metadata(tmp_path: Path) -> None:
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"%PDF-1.7 nothing else")

    assert extract_metadata(path) == DocumentMetadata()


# --- the catalog: ingest, edit, older libraries ---------------------------------------------


def test_ingest_stores_metadata_and_edits_persist(library: Library, tmp_path: Path) -> None:
    path = tmp_path / "contract.pdf"
    path.write_bytes(contract_pdf())
    doc_id = library.ingest(path).doc_id

    assert library.metadata()[doc_id].parties == ("Quillfeather Publishing Ltd", "Orrin Vale")
    library.edit_metadata(doc_id, title="Publishing Agreement (Vale)", year="2025")
    with pytest.raises(MetadataError, match="year must be four digits"):
        library.edit_metadata(doc_id, year="25", title="lost")

    reopened = Library(library.settings, embedder=library.embedder)
    metadata = reopened.metadata()[doc_id]
    assert metadata.title == "Publishing Agreement (Vale)" and metadata.year == "2025"
    assert metadata.date == "2025-02-03"  # fields not edited are kept
    assert reopened.delete(doc_id) and reopened.metadata() == {}
    with sqlite3.connect(library.root / CATALOG_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM document_metadata").fetchone()[0] == 0


def test_an_older_library_without_the_table_opens_and_fills_it(
    library: Library, tmp_path: Path
) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(paper_pdf())
    doc_id = library.ingest(path).doc_id
    with sqlite3.connect(library.root / CATALOG_FILE) as db:
        db.execute("DROP TABLE document_metadata")  # as a library made before metadata was

    reopened = Library(library.settings, embedder=library.embedder)

    assert reopened.metadata()[doc_id].title == PAPER_TITLE
    assert [hit.doc_id for hit in reopened.search("remasking schedules", k=1)] == [doc_id]


# --- BibTeX ---------------------------------------------------------------------------------

BIB = r"""
@article{marlow2025,
  title = {Remasking schedules for masked diffusion drafting},
  author = {Marlow, In{\`e}s and Baptiste, Teodor},
  journal = {Journal of Computational Drafting},
  volume = {3}, pages = {41--58}, year = {2025},
}
@misc{pubagr,
  title = {Publishing Agreement between Quillfeather and Vale},
  file = {:contracts/contract.pdf:PDF},
  date = {2025-02-03},
  year = {circa 2025},
}
@misc{nomatch, title = {A Treatise on Something Else Entirely}}
@misc{broken, title = {Unclosed
"""


def test_a_bib_beside_the_pdfs_fills_their_fields(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "paper.pdf").write_bytes(paper_pdf())
    (folder / "contract.pdf").write_bytes(contract_pdf())
    (folder / "refs.bib").write_text(BIB, encoding="utf-8")
    library_dir = tmp_path / "library"

    assert main(["ingest", str(folder), "--library", str(library_dir)]) == 0

    docs = {d["filename"]: d["metadata"] for d in _cli_json(["docs", "--json"], library_dir)}
    paper, contract = docs["paper.pdf"], docs["contract.pdf"]
    assert paper["key"] == "marlow2025" and paper["entry_type"] == "article"  # by title
    assert paper["authors"] == ["Marlow, Inès", "Baptiste, Teodor"]
    assert paper["extra"] == {
        "journal": "Journal of Computational Drafting",
        "volume": "3",
        "pages": "41–58",
    }
    assert paper["doi"] == "10.5555/jcd.2025.0042"  # read from the PDF, absent from the entry
    assert contract["title"] == "Publishing Agreement between Quillfeather and Vale"  # by file
    assert contract["parties"] == ["Quillfeather Publishing Ltd", "Orrin Vale"]
    assert contract["extra"] == {"year": "circa 2025"}  # not a year, but not lost either


def test_the_import_reports_what_it_could_not_use(tmp_path: Path, library: Library) -> None:
    (tmp_path / "paper.pdf").write_bytes(paper_pdf())
    library.ingest(tmp_path / "paper.pdf")
    bib = tmp_path / "refs.bib"
    bib.write_text(BIB, encoding="utf-8")

    lines = import_bib_file(library, bib).lines()

    assert "bib: refs.bib: marlow2025 -> paper.pdf (by title)" in lines
    assert "bib: refs.bib: no document for pubagr, nomatch" in lines
    assert any("line 15: skipped" in line for line in lines)  # the unclosed entry
    assert any("pubagr: year must be four digits" in line for line in lines)


def test_bib_export_round_trips(tmp_path: Path) -> None:
    parsed = parse_bibtex(BIB)
    documents = [("paper.pdf", parsed.entries[0].metadata), ("c.pdf", parsed.entries[1].metadata)]
    unnamed = DocumentMetadata(title="Untitled {draft", authors=("Ines Marlow",), year="2025")

    again = parse_bibtex(to_bibtex([*documents, ("draft.pdf", unnamed)]))

    assert again.problems == [p for p in parsed.problems if p.startswith("pubagr")]  # kept again
    assert [e.metadata for e in again.entries[:2]] == [m for _, m in documents]
    assert again.entries[2].metadata.key == "marlow2025a"  # made, and not the first's key
    assert again.entries[2].metadata.title == "Untitled draft"  # an unbalanced brace dropped
    assert [e.files for e in again.entries] == [("paper.pdf",), ("c.pdf",), ("draft.pdf",)]


def test_cli_meta_edits_and_bib_export_writes_the_library(tmp_path: Path, capsys) -> None:
    library_dir = tmp_path / "library"
    (tmp_path / "paper.pdf").write_bytes(paper_pdf())
    assert main(["ingest", str(tmp_path / "paper.pdf"), "--library", str(library_dir)]) == 0
    doc_id = _cli_json(["docs", "--json"], library_dir)[0]["doc_id"]

    edited = _cli_json(["meta", doc_id[:8], "--year", "2025", "--json"], library_dir)
    assert edited["year"] == "2025" and edited["title"] == PAPER_TITLE
    capsys.readouterr()
    assert main(["meta", doc_id[:8], "--doi", "not a doi", "--library", str(library_dir)]) == 2
    assert "a DOI looks like 10.1234/abc" in capsys.readouterr().err

    out = tmp_path / "library.bib"
    assert main(["bib", "export", "-o", str(out), "--library", str(library_dir)]) == 0
    (entry,) = parse_bibtex(out.read_text(encoding="utf-8")).entries
    assert entry.metadata.key == "marlow2025" and entry.files == ("paper.pdf",)
    assert entry.metadata.doi == "10.5555/jcd.2025.0042"


def _cli_json(args: list[str], library_dir: Path):
    capture = io.StringIO()
    with redirect_stdout(capture):
        assert main([*args, "--library", str(library_dir)]) == 0
    return json.loads(capture.getvalue())
