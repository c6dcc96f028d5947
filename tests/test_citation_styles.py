"""Citation styles (author-date, numeric, legal pin cites) through citeproc-py, and a real
draft exported to DOCX in each style with its bibliography."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn
from drafting_fixtures import draft_settings
from lxml import etree

from engine.citations import PinCite, Source, format_citations
from engine.draft import edit_text
from engine.errors import PalimpsestError
from engine.metadata import DocumentMetadata
from engine.pin_cites import clause_at, section_at

PAPER = Source(
    "p",
    "note.pdf",
    DocumentMetadata(
        title="Pinning and remasking",
        authors=("Okafor, Amara N.", "Lukas Brandt"),
        year="2024",
        doi="10.5555/x.1",
        entry_type="article",
        extra={"journal": "Journal of Computational Drafting"},
    ),
)
CONTRACT = Source(
    "c",
    "msa.pdf",
    DocumentMetadata(
        title="Services Agreement", parties=("Northwind Ltd", "Harbor plc"), date="2024-03-14"
    ),
)
ACT = Source("a", "act.pdf", DocumentMetadata(title="Data Stewardship Act 2024"))
UNKNOWN = Source("u", "scan-0042.pdf", DocumentMetadata())
SOURCES = {s.doc_id: s for s in (PAPER, CONTRACT, ACT, UNKNOWN)}
CITES = [
    PinCite("c", "3", "12.2"),
    PinCite("p", "5"),
    PinCite("a", "2", "4(2)"),
    PinCite("u", "iv"),
    PinCite("c", "4"),
]


def test_author_date() -> None:
    cites, bibliography = format_citations("author-date", SOURCES, CITES)

    assert cites == [
        "(Northwind Ltd and Harbor plc, 2024, p. 3)",
        "(Okafor and Brandt, 2024, p. 5)",
        "(Data Stewardship Act 2024, no date, p. 2)",
        "(“scan-0042”, no date, p. iv)",  # no metadata: the file name stands as the title
        "(Northwind Ltd and Harbor plc, 2024, p. 4)",
    ]
    assert bibliography == [  # sorted by author (or the title standing for one), as Harvard does
        "Data Stewardship Act 2024 (no date) Data Stewardship Act 2024.",
        "Northwind Ltd and Harbor plc (2024) “Services Agreement”.",
        "Okafor, A.N. and Brandt, L. (2024) “Pinning and remasking”, Journal of Computational "
        "Drafting [Preprint]. Available at: https://doi.org/10.5555/x.1.",
        "“scan-0042” (no date) “scan-0042”.",
    ]


def test_numeric_numbers_sources_in_order_of_first_citation() -> None:
    cites, bibliography = format_citations("numeric", SOURCES, CITES)

    assert cites == ["[1, p. 3]", "[2, p. 5]", "[3, p. 2]", "[4, p. iv]", "[1, p. 4]"]
    assert [entry[:4] for entry in bibliography] == ["[1] ", "[2] ", "[3] ", "[4] "]
    assert bibliography[1] == (
        "[2] Okafor, A. N. and Brandt, L. Pinning and remasking. Journal of Computational "
        "Drafting, 2024. doi: 10.5555/x.1."
    )


def test_legal_pin_cites() -> None:
    cites, bibliography = format_citations("legal", SOURCES, CITES)

    assert cites == [
        "Services Agreement, cl. 12.2, p. 3",
        "Pinning and remasking, p. 5",
        "Data Stewardship Act 2024, s. 4(2), p. 2",
        "scan-0042, p. iv",
        "Services Agreement, p. 4",
    ]
    assert "Services Agreement, between Northwind Ltd and Harbor plc, dated 14 March 2024" in (
        bibliography
    )


def test_only_cited_sources_are_in_the_bibliography_and_styles_are_checked() -> None:
    _, bibliography = format_citations("numeric", SOURCES, [PinCite("a", "1")])
    assert bibliography == ["[1] Data Stewardship Act 2024."]
    with pytest.raises(ValueError, match="author-date, numeric, legal"):
        format_citations("chicago", SOURCES, CITES)


@pytest.mark.parametrize(
    ("offset_of", "clause", "section"),
    [
        ("3.2 The Customer", "3.2", "3"),  # a quote starting with its number is in that clause
        ("pay within", "3.2", "3"),
        ("(2) A controller", "3.2", "3(2)"),
        ("Preamble", "", ""),
    ],
)
def test_pins_come_from_numbered_lines(offset_of: str, clause: str, section: str) -> None:
    page = (
        "Preamble text.\n3 Fees and payment\n3.1 Charges are monthly.\n3.2 The Customer shall "
        "pay within thirty days.\n(2) A controller shall keep records."
    )
    offset = page.index(offset_of)

    assert clause_at(page, offset) == clause
    assert section_at(page, offset) == section


def test_a_draft_exported_to_docx_shows_the_style_and_a_bibliography(
    workspace, tiny_model, tmp_path: Path
) -> None:
    copied = "The Customer shall pay each valid invoice within thirty (30) days of the date."
    drafter = workspace.drafter(str(tiny_model))
    draft = drafter.start("Payment terms", ["Payment"], draft_settings(tiny_model))
    edit_text(drafter.tokenizer, draft.blocks[0], copied)
    drafter.save(draft)

    notes, paragraphs = _read(
        workspace.export(draft.draft_id, "docx", tmp_path / "l.docx", "legal")
    )
    assert notes[0].startswith(
        "Master Services Agreement, cl. 3.2, p. 2: “3.2 The Customer shall pay each valid invoice"
    )
    references = paragraphs[paragraphs.index("References") + 1 :]
    assert (
        "Master Services Agreement, between Northwind Analytics Ltd and Harbor Freight Logistics "
        "Plc, dated 14 March 2024" in references
    )

    notes, paragraphs = _read(
        workspace.export(draft.draft_id, "docx", tmp_path / "n.docx", "numeric")
    )
    assert notes[0].startswith("[1, p. 2]: “3.2 The Customer")
    assert paragraphs[paragraphs.index("References") + 1].startswith(
        "[1] Northwind Analytics Ltd and Harbor Freight Logistics Plc. Master Services Agreement."
    )

    notes, _ = _read(workspace.export(draft.draft_id, "docx", tmp_path / "a.docx", "author-date"))
    assert notes[0].startswith("(Northwind Analytics Ltd and Harbor Freight Logistics Plc, 2024,")

    markdown = workspace.export(draft.draft_id, "md", tmp_path / "d.md", "legal")
    assert "## References" in markdown.read_text(encoding="utf-8")
    plain = workspace.export(draft.draft_id, "md", tmp_path / "p.md")  # today's export
    assert "References" not in plain.read_text(encoding="utf-8")
    with pytest.raises(PalimpsestError, match="unknown citation style"):
        workspace.export(draft.draft_id, "md", tmp_path / "x.md", "mla")


def _read(path: Path) -> tuple[list[str], list[str]]:
    """A DOCX's footnote texts (in order, without the separators) and its paragraph texts."""
    with zipfile.ZipFile(path) as package:
        footnotes = etree.fromstring(package.read("word/footnotes.xml"))
    notes = [
        "".join(t.text or "" for t in note.iter(qn("w:t"))).strip()
        for note in footnotes.iterchildren(qn("w:footnote"))
        if int(note.get(qn("w:id"))) > 0
    ]
    return notes, [p.text for p in docx.Document(str(path)).paragraphs]


def test_download_links_carry_the_chosen_style() -> None:
    from ui.drafts_tab import PLAIN_CITATIONS, download_links

    assert 'href="download/d1.docx?style=legal"' in download_links("d1", "legal")
    assert 'href="download/d1.md"' in download_links("d1", PLAIN_CITATIONS)
