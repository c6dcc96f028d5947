"""Export to Markdown and DOCX, citations as footnotes (filename, page label, quoted evidence)."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import docx
import pytest
from docx.opc.constants import CONTENT_TYPE as CT
from docx.oxml.ns import qn
from drafting_fixtures import draft_settings
from lxml import etree

from engine.draft import edit_text
from engine.export import (
    UNSUPPORTED_MARK,
    Citation,
    CitedSentence,
    ExportSection,
    export_draft,
    to_markdown,
    write_docx,
)

W_NS = {"w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main"}
HOSTILE = "*bold* <script>alert(1)</script> # not a heading"
HOSTILE_ESCAPED = r"\*bold\* \<script\>alert(1)\</script\> \# not a heading"

LEASE = Citation("lease_2021.pdf", "iv", "The tenant shall keep\nthe premises   in good repair.")
STATUTE = Citation(
    "statute.pdf", "12", "No person shall be liable for [an act] done in good faith."
)
PAPER = Citation("paper.pdf", "3", 'Repairs & <maintenance> are the tenant\'s "duty".')


def _sections() -> list[ExportSection]:
    return [
        ExportSection("Duties", "The tenant repairs.\n\nThe landlord insures.", [LEASE, STATUTE]),
        ExportSection("Background", "Nothing cited here.", []),
        ExportSection("Liability", "Good faith protects.", [PAPER]),
    ]


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_has_title_instruction_and_headings_in_order() -> None:
    markdown = to_markdown("Memo", _sections(), instruction="Summarise the duties")

    lines = markdown.splitlines()
    assert lines[0] == "# Memo"
    assert "*Summarise the duties*" in lines
    headings = [line for line in lines if line.startswith("#")]
    assert headings == ["# Memo", "## Duties", "## Background", "## Liability"]
    assert "The tenant repairs.\n\nThe landlord insures.[^1][^2]" in markdown


def test_markdown_without_instruction_has_no_italic_line() -> None:
    markdown = to_markdown("Memo", _sections())

    assert not any(line.startswith("*") for line in markdown.splitlines())


def test_markdown_escapes_text_so_it_renders_literally() -> None:
    markdown = to_markdown("Memo", [ExportSection("Risks", HOSTILE, [])])

    assert HOSTILE_ESCAPED in markdown.splitlines()
    assert "<script>" not in markdown


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("# heading", r"\# heading"),
        ("- not a list", r"\- not a list"),
        ("+ not a list", r"\+ not a list"),
        ("12. not a list", r"12\. not a list"),
        ("3) not a list", r"3\) not a list"),
        ("> not a quote", r"\> not a quote"),
        ("a [link](http://x) and ![img](y)", r"a \[link\](http://x) and !\[img\](y)"),
        ("snake_case & `code` ~strike~ | pipe", r"snake\_case \& \`code\` \~strike\~ \| pipe"),
        ("$5 and $6, back\\slash", r"\$5 and \$6, back\\slash"),
        ("&amp; stays text", r"\&amp; stays text"),
    ],
)
def test_markdown_escapes_block_and_inline_syntax(text: str, escaped: str) -> None:
    markdown = to_markdown("T", [ExportSection("S", text, [])])

    assert escaped in markdown.splitlines()


@pytest.mark.parametrize(
    "text",
    [
        HOSTILE,
        "- item\n\n1. item\n\n> quote",
        "a [link](http://x) and ![img](y) <b>&amp; \\*x\\*",
        "snake_case `code` ***rule*** __dunder__",
    ],
)
def test_escaped_markdown_parses_back_to_the_same_text(text: str) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    markdown = to_markdown("T", [ExportSection("S", text, [])])
    body = markdown.split("## S\n\n", 1)[1]

    tokens = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(body)

    paragraphs = text.split("\n\n")
    top_level = [token.type for token in tokens if token.level == 0]
    assert top_level == ["paragraph_open", "paragraph_close"] * len(paragraphs)
    inline = [token for token in tokens if token.type == "inline"]
    assert all(child.type == "text" for token in inline for child in token.children or [])
    assert ["".join(child.content for child in token.children or []) for token in inline] == (
        paragraphs
    )


def test_markdown_footnotes_are_numbered_across_sections() -> None:
    markdown = to_markdown("Memo", _sections())

    assert markdown.count("[^1]") == 2  # reference and definition
    assert "Good faith protects.[^3]" in markdown
    definitions = [line for line in markdown.splitlines() if re.match(r"\[\^\d+\]:", line)]
    assert definitions == [
        r"[^1]: lease\_2021.pdf, p. iv: “The tenant shall keep the premises in good repair.”",
        r"[^2]: statute.pdf, p. 12: “No person shall be liable for \[an act\] done in good faith.”",
        r"""[^3]: paper.pdf, p. 3: “Repairs \& \<maintenance\> are the tenant's "duty".”""",
    ]
    assert markdown.rstrip().endswith(definitions[-1])


def test_markdown_section_without_citations_has_no_footnote() -> None:
    markdown = to_markdown("Memo", _sections())

    background = markdown.split("## Background", 1)[1].split("## Liability", 1)[0]
    assert "[^" not in background
    assert to_markdown("Memo", [ExportSection("Only", "Plain.", [])]).count("[^") == 0


def test_markdown_duplicate_citations_in_a_section_appear_once() -> None:
    spaced = Citation(
        LEASE.filename, LEASE.page_label, "The tenant shall keep the premises in\ngood repair."
    )
    section = ExportSection("Duties", "Repairs.", [LEASE, LEASE, spaced, STATUTE])

    markdown = to_markdown("Memo", [section])

    assert "Repairs.[^1][^2]\n" in markdown
    assert "[^3]" not in markdown


def test_markdown_same_citation_in_two_sections_gets_a_note_in_each() -> None:
    markdown = to_markdown(
        "Memo", [ExportSection("A", "a", [LEASE]), ExportSection("B", "b", [LEASE])]
    )

    assert "a[^1]" in markdown and "b[^2]" in markdown


def test_markdown_long_quote_is_one_line_trimmed_at_a_word_boundary() -> None:
    words = [f"word{i}" for i in range(200)]
    section = ExportSection("S", "Text.", [Citation("long.pdf", "7", "\n".join(words))])

    definition = to_markdown("T", [section]).splitlines()[-1]

    quote = definition.split("“", 1)[1]
    assert quote.endswith("…”")
    kept = quote.removesuffix("…”").split(" ")
    assert kept == words[: len(kept)]
    assert 200 <= len(quote) <= 305


def test_markdown_citation_only_section_still_gets_its_reference() -> None:
    markdown = to_markdown("T", [ExportSection("Empty", "", [LEASE])])

    assert "## Empty\n\n[^1]" in markdown


def test_export_draft_writes_markdown_and_rejects_unknown_formats(tmp_path: Path) -> None:
    path = export_draft(tmp_path / "memo.md", "md", "Memo", _sections())

    assert path.read_text(encoding="utf-8") == to_markdown("Memo", _sections())
    with pytest.raises(ValueError, match="pdf"):
        export_draft(tmp_path / "memo.pdf", "pdf", "Memo", _sections())  # type: ignore[arg-type]
    assert not (tmp_path / "memo.pdf").exists()


# --- DOCX -----------------------------------------------------------------------------------


def _footnotes_xml(path: Path) -> etree._Element:
    document = docx.Document(str(path))
    parts = [p for p in document.part.package.iter_parts() if p.content_type == CT.WML_FOOTNOTES]
    assert len(parts) == 1
    return etree.fromstring(parts[0].blob)


def _notes(footnotes: etree._Element) -> dict[int, str]:
    """Footnote id -> its text, for the real (not separator) footnotes."""
    return {
        int(note.get(qn("w:id"))): "".join(note.itertext())
        for note in footnotes.findall("w:footnote", W_NS)
        if int(note.get(qn("w:id"))) >= 1
    }


def _reference_ids(paragraph) -> list[int]:
    return [int(ref.get(qn("w:id"))) for ref in paragraph._p.iter(qn("w:footnoteReference"))]


def test_docx_has_title_headings_and_paragraphs_in_order(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", _sections(), instruction="Summarise")

    paragraphs = docx.Document(str(path)).paragraphs
    assert [(p.style.name, p.text) for p in paragraphs] == [
        ("Title", "Memo"),
        ("Normal", "Summarise"),
        ("Heading 1", "Duties"),
        ("Normal", "The tenant repairs."),
        ("Normal", "The landlord insures.,"),  # the comma keeps notes 1 and 2 apart
        ("Heading 1", "Background"),
        ("Normal", "Nothing cited here."),
        ("Heading 1", "Liability"),
        ("Normal", "Good faith protects."),
    ]
    assert paragraphs[1].runs[0].italic


def test_docx_has_one_real_footnote_per_citation(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", _sections())

    footnotes = _footnotes_xml(path)
    separators = {
        n.get(qn("w:id")): n.get(qn("w:type")) for n in footnotes.findall("w:footnote", W_NS)
    }
    assert separators["-1"] == "separator" and separators["0"] == "continuationSeparator"
    notes = _notes(footnotes)
    assert sorted(notes) == [1, 2, 3]
    for note_id, citation in zip([1, 2, 3], [LEASE, STATUTE, PAPER], strict=True):
        assert citation.filename in notes[note_id]
        assert f"p. {citation.page_label}" in notes[note_id]
        assert " ".join(citation.quote.split()) in notes[note_id]
    for note in footnotes.findall("w:footnote", W_NS):
        refs = note.findall(".//w:footnoteRef", W_NS)
        assert len(refs) == (1 if int(note.get(qn("w:id"))) >= 1 else 0)
        for ref in refs:
            assert ref.getparent().find("w:rPr/w:vertAlign", W_NS).get(qn("w:val")) == "superscript"


def test_docx_body_references_match_the_footnotes(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", _sections())

    paragraphs = docx.Document(str(path)).paragraphs
    by_text = {p.text.rstrip(","): _reference_ids(p) for p in paragraphs}
    assert by_text["The landlord insures."] == [1, 2]
    assert by_text["The tenant repairs."] == []
    assert by_text["Nothing cited here."] == []
    assert by_text["Good faith protects."] == [3]
    body = docx.Document(str(path)).element.body
    all_refs = [int(ref.get(qn("w:id"))) for ref in body.iter(qn("w:footnoteReference"))]
    assert all_refs == sorted(_notes(_footnotes_xml(path)))
    for ref in body.iter(qn("w:footnoteReference")):
        assert ref.getparent().find("w:rPr/w:vertAlign", W_NS).get(qn("w:val")) == "superscript"


def test_docx_deduplicates_citations_within_a_section(tmp_path: Path) -> None:
    section = ExportSection("Duties", "Repairs.", [LEASE, STATUTE, LEASE])
    path = write_docx(tmp_path / "memo.docx", "Memo", [section])

    assert sorted(_notes(_footnotes_xml(path))) == [1, 2]


def test_docx_text_with_markup_characters_and_control_chars_survives(tmp_path: Path) -> None:
    text = "a < b & c > d \"double\" 'single' \x0bend\x00 </w:t> ]]>"
    quote = 'evidence <with> & \x01odd\x1f "text"'
    sections = [ExportSection("Heading & <more>\x07", text, [Citation("f&<>.pdf", "x\x02", quote)])]

    path = write_docx(tmp_path / "odd.docx", "Title <&>", sections, instruction="Do \x0c it")

    document = docx.Document(str(path))
    texts = [p.text for p in document.paragraphs]
    assert texts == [
        "Title <&>",
        "Do it",
        "Heading & <more>",
        "a < b & c > d \"double\" 'single' end </w:t> ]]>",
    ]
    assert _notes(_footnotes_xml(path))[1] == ' f&<>.pdf, p. x: “evidence <with> & odd "text"”'


def test_docx_package_declares_the_footnotes_part(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", _sections())

    with zipfile.ZipFile(path) as package:
        names = package.namelist()
        content_types = etree.fromstring(package.read("[Content_Types].xml"))
        relationships = etree.fromstring(package.read("word/_rels/document.xml.rels"))
        footnotes = etree.fromstring(package.read("word/footnotes.xml"))
    assert "word/footnotes.xml" in names
    overrides = {o.get("PartName"): o.get("ContentType") for o in content_types}
    assert overrides["/word/footnotes.xml"] == CT.WML_FOOTNOTES
    targets = {rel.get("Type"): rel.get("Target") for rel in relationships}
    footnotes_rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes"
    assert targets[footnotes_rel] == "footnotes.xml"
    assert len(footnotes.findall("w:footnote", W_NS)) == 2 + 3


def test_docx_template_with_footnotes_keeps_them_and_numbers_after_them(tmp_path: Path) -> None:
    """A template made in Word has a footnotes part already; python-docx loads it as bytes."""
    template = write_docx(tmp_path / "template.docx", "Letterhead", _sections())
    extra = [ExportSection("Addendum", "More.", [Citation("new.pdf", "1", "New evidence.")])]

    path = write_docx(tmp_path / "memo.docx", "Memo", extra, template=template)

    footnotes = _footnotes_xml(path)
    notes = _notes(footnotes)
    assert sorted(notes) == [1, 2, 3, 4]
    assert "new.pdf" in notes[4] and "lease_2021.pdf" in notes[1]
    ids = [note.get(qn("w:id")) for note in footnotes.findall("w:footnote", W_NS)]
    assert ids.count("-1") == 1 and ids.count("0") == 1
    more = next(p for p in docx.Document(str(path)).paragraphs if p.text == "More.")
    assert _reference_ids(more) == [4]


def test_export_draft_writes_docx(tmp_path: Path) -> None:
    path = export_draft(str(tmp_path / "memo.docx"), "docx", "Memo", _sections())

    assert path == tmp_path / "memo.docx"
    assert sorted(_notes(_footnotes_xml(path))) == [1, 2, 3]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_libreoffice_renders_the_footnotes(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", _sections())

    subprocess.run(
        ["soffice", "--headless", "--convert-to", "txt:Text", "--outdir", str(tmp_path), str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )

    text = " ".join((tmp_path / "memo.txt").read_text(encoding="utf-8", errors="replace").split())
    assert "The landlord insures." in text
    assert "statute.pdf, p. 12" in text
    assert "No person shall be liable" in text


# --- per-sentence notes ---------------------------------------------------------------------

CITED_TEXT = "The tenant repairs.  The moon is cheese.\n\n- The landlord insures. Done"


def _cited_section() -> ExportSection:
    sentences = [
        CitedSentence(0, 19, [LEASE, STATUTE, LEASE]),
        CitedSentence(21, 40, []),
        CitedSentence(42, 65, [PAPER]),
        CitedSentence(66, 70, []),
    ]
    return ExportSection("Duties", CITED_TEXT, sentences=sentences)


def test_markdown_notes_follow_each_supported_sentence_and_mark_the_others() -> None:
    markdown = to_markdown("Memo", [_cited_section(), ExportSection("B", "b", [LEASE])])

    assert "The tenant repairs.[^1][^2] The moon is cheese. *\\[unsupported\\]*\n" in markdown
    assert "\\- The landlord insures.[^3] Done *\\[unsupported\\]*\n" in markdown
    assert "b[^4]" in markdown
    definitions = [line for line in markdown.splitlines() if re.match(r"\[\^\d+\]:", line)]
    assert [line.split(":", 1)[1].split(",")[0] for line in definitions] == [
        r" lease\_2021.pdf",
        " statute.pdf",
        " paper.pdf",
        r" lease\_2021.pdf",
    ]


def test_docx_notes_follow_each_supported_sentence_and_mark_the_others(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "memo.docx", "Memo", [_cited_section()])

    paragraphs = docx.Document(str(path)).paragraphs[2:]
    assert [p.text for p in paragraphs] == [
        f"The tenant repairs., The moon is cheese. {UNSUPPORTED_MARK}",
        f"- The landlord insures. Done {UNSUPPORTED_MARK}",
    ]
    assert [_reference_ids(p) for p in paragraphs] == [[1, 2], [3]]
    marks = [run for p in paragraphs for run in p.runs if run.text.strip() == UNSUPPORTED_MARK]
    assert len(marks) == 2 and all(run.italic for run in marks)
    notes = _notes(_footnotes_xml(path))
    assert sorted(notes) == [1, 2, 3] and "paper.pdf, p. 3" in notes[3]


def test_a_drafts_sentences_conflicts_and_notes_only_for_supported_sentences(
    workspace, tiny_model, tmp_path: Path
) -> None:
    """A real draft over the samples. Block 1: a sentence copied from a page, then one that no
    source holds; the export cites the first and marks the second. Block 2: a notice clause that
    two samples fill with different periods, which its `conflicts` show."""
    copied = "The Customer shall pay each valid invoice within thirty (30) days of the date."
    unrelated = "The striker scored twice in the second half to win the cup final."
    notice = "Either party may end this Agreement by giving the other party written notice."
    drafter = workspace.drafter(str(tiny_model))
    draft = drafter.start("Payment terms", ["Payment", "Notice"], draft_settings(tiny_model))
    edit_text(drafter.tokenizer, draft.blocks[0], f"{copied} {unrelated}")
    edit_text(drafter.tokenizer, draft.blocks[1], notice)
    drafter.save(draft)

    block, notice_block = workspace.to_json(drafter, draft)["blocks"]
    supported, unsupported = block["sentences"]
    assert supported["supported"] and not unsupported["supported"]
    assert supported["citations"][0]["filename"] == "services-agreement.pdf"
    assert block["conflicts"] == []
    # the NDA gives thirty days' notice, the services agreement ninety: the section shows both
    (conflict,) = notice_block["conflicts"]
    sides = {(v["filename"], v["page_label"], v["value"]) for v in conflict["values"]}
    assert sides == {("nda.pdf", "2", 30), ("services-agreement.pdf", "3", 90)}
    cited = len(supported["citations"]) + len(notice_block["sentences"][0]["citations"])
    markdown = workspace.export(draft.draft_id, "md", tmp_path / "d.md").read_text("utf-8")
    payment = markdown.split("## Payment", 1)[1].split("## Notice", 1)[0]
    assert payment.count("[^") == len(supported["citations"]) >= 1
    assert payment.rstrip().endswith("*\\[unsupported\\]*")
    assert (
        "services-agreement.pdf, p. 2: “3.2 The Customer shall pay each valid invoice" in markdown
    )
    assert len(re.findall(r"^\[\^\d+\]: ", markdown, re.MULTILINE)) == cited
    docx_path = workspace.export(draft.draft_id, "docx", tmp_path / "d.docx")
    assert len(_notes(_footnotes_xml(docx_path))) == cited
