"""A section's pending change exported to DOCX as Word revisions: accepting every revision gives
the current text, rejecting every one gives the text before the change, footnotes included."""

from __future__ import annotations

import zipfile
from pathlib import Path

from lxml import etree

from engine.export import Citation, CitedSentence, ExportSection, write_docx
from engine.tracked_changes import word_change

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
BEFORE = "Either party may end this Agreement on thirty days' notice. The fees stay due."
AFTER = "Either party may terminate this Agreement on ninety (90) days' written notice."


def paragraphs(path: Path) -> list[etree._Element]:
    with zipfile.ZipFile(path) as package:
        body = etree.fromstring(package.read("word/document.xml"))
    return body.findall(f".//{W}p")


def read(paragraph: etree._Element, accept: bool) -> str:
    """The paragraph's text with every revision accepted (or rejected)."""
    text = ""
    for node in paragraph.iter(f"{W}t", f"{W}delText"):
        inserted = any(a.tag == f"{W}ins" for a in node.iterancestors())
        if node.tag == f"{W}delText":
            text += "" if accept else node.text
        elif not inserted or accept:
            text += node.text
    return text


def test_word_change_marks_new_words_and_places_deleted_ones():
    change = word_change("a b c d", "a x c d e")
    assert change.inserted == [False, True, False, False, True]
    assert change.deleted_before == ["", " b", "", "", ""] and change.trailing == ""
    assert word_change("a b c", "a").trailing == " b c"


def test_a_pending_change_exports_as_tracked_changes(tmp_path: Path):
    cited = [CitedSentence(0, len(AFTER), [Citation("msa.pdf", "3", "ninety (90) days")])]
    sections = [
        ExportSection("Termination", AFTER, sentences=cited, previous=BEFORE),
        ExportSection("Fees", "The fees are due monthly.", sentences=[]),
    ]
    path = write_docx(tmp_path / "changed.docx", "Draft", sections)
    body = [p for p in paragraphs(path) if read(p, accept=True) or read(p, accept=False)]
    changed = next(p for p in body if "terminate" in read(p, accept=True))
    assert read(changed, accept=True).strip() == AFTER
    assert read(changed, accept=False).strip() == BEFORE
    assert changed.findall(f".//{W}ins") and changed.findall(f".//{W}del")
    assert changed.findall(f".//{W}footnoteReference")  # the citation survives the change
    ids = [e.get(f"{W}id") for e in changed.iter(f"{W}ins", f"{W}del")]
    assert len(ids) == len(set(ids))  # Word needs every revision id unique
    authors = {e.get(f"{W}author") for e in changed.iter(f"{W}ins", f"{W}del")}
    assert authors == {"Palimpsest"}
    unchanged = next(p for p in body if "monthly" in read(p, accept=True))
    assert not unchanged.findall(f".//{W}ins") and not unchanged.findall(f".//{W}del")
