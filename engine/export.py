"""Export a draft to Markdown or DOCX, with every citation as a footnote.

A citation prints as ``filename, p. label: “quote”``, or, when a citation style has formatted it
(`Citation.cite`, see `engine.citations`), as ``cite: “quote”``; a styled export ends with its
bibliography under the heading "References". The module knows nothing about how drafts
are stored: callers hand it a title, an optional instruction and a list of `ExportSection`.

A section cites either as a whole (its notes follow its last paragraph) or sentence by sentence
(`ExportSection.sentences`): then each supported sentence is followed by its own notes, and each
unsupported one by the marker ``[unsupported]`` (italic), so a reader sees which claims no source
backs.

Text handling shared by both formats: characters that XML cannot hold (control characters, lone
surrogates) are removed, so odd text extracted from a PDF cannot break a file; paragraphs are
separated by blank lines, and any other run of whitespace, single newlines included, collapses to
one space, which is also how Markdown renders it.

A section with a pending change (`ExportSection.previous`, the text before it) goes into a DOCX
as Word tracked changes, deleted words as deletions and new ones as insertions
(engine/tracked_changes.py), for the reader to accept or reject in Word; Markdown has no such
markup and carries the current text.

python-docx has no footnote API, so `write_docx` builds the footnotes part (``word/footnotes.xml``)
itself and places real Word footnote references in the body.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import docx
from docx.document import Document
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part, XmlPart
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.text.paragraph import Paragraph
from lxml import etree

from engine.tracked_changes import ChangedText, Revisions, word_change

UNSUPPORTED_MARK = "[unsupported]"
QUOTE_LIMIT = 300  # characters of quoted evidence printed in a footnote
FOOTNOTE_FONT_SIZE = "20"  # half-points: 10 pt, the usual size of footnote text
FOOTNOTES_PARTNAME = "/word/footnotes.xml"
BIBLIOGRAPHY_HEADING = "References"

XmlElement = etree._Element  # lxml's element class; the hand-built footnote XML uses no wrapper

# XML 1.0 allows tab, newline and carriage return but no other C0 control, no lone surrogate and
# neither U+FFFE nor U+FFFF. Vertical tab and form feed separate words, so they become spaces.
_XML_INVALID = re.compile(r"[\x00-\x08\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_WORD_BREAKS = str.maketrans({"\x0b": " ", "\x0c": " "})
_BLANK_LINE = re.compile(r"\n\s*\n")

# Markdown: characters escaped wherever they occur, and constructs that only act at the start
# of a paragraph (bullet lists, ordered lists such as "12. " or "3) ").
_MD_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&$])")
_MD_LINE_START_SPECIAL = re.compile(r"^([-+])")
_MD_ORDERED_LIST = re.compile(r"^(\d+)([.)])(?=\s|$)")

# The two special footnotes Word expects before any real one; they draw the separator line
# above the footnotes and its continuation on later pages, and must hold no footnoteRef.
_EMPTY_FOOTNOTES_XML = (
    f"<w:footnotes {nsdecls('w')}>"
    '<w:footnote w:type="separator" w:id="-1">'
    "<w:p><w:r><w:separator/></w:r></w:p>"
    "</w:footnote>"
    '<w:footnote w:type="continuationSeparator" w:id="0">'
    "<w:p><w:r><w:continuationSeparator/></w:r></w:p>"
    "</w:footnote>"
    "</w:footnotes>"
)


@dataclass(frozen=True)
class Citation:
    filename: str
    page_label: str
    quote: str  # the evidence text, verbatim from the source page
    cite: str = ""  # the source as a citation style prints it; empty: filename and page label


@dataclass(frozen=True)
class CitedSentence:
    start: int  # character range in the section's text
    end: int
    citations: list[Citation]  # none: no source supports the sentence


@dataclass(frozen=True)
class ExportSection:
    heading: str
    text: str  # plain text; paragraphs separated by blank lines
    citations: list[Citation] = field(default_factory=list)
    sentences: list[CitedSentence] | None = None  # set: notes per sentence, not per section
    previous: str | None = None  # the text before a pending change: DOCX shows it as revisions


@dataclass(frozen=True)
class Notes:
    """What follows a sentence: footnotes, or the unsupported marker when `citations` is empty."""

    citations: list[Citation]


Inline = str | Notes  # a paragraph of a sentence-cited section: its text and its notes, in order


# --- shared text handling -------------------------------------------------------------------


def _clean(text: str) -> str:
    """`text` without the characters XML cannot hold (vertical tab and form feed become spaces)."""
    return _XML_INVALID.sub("", text.translate(_WORD_BREAKS))


def _one_line(text: str) -> str:
    """`text` cleaned, with every run of whitespace collapsed to one space."""
    return " ".join(_clean(text).split())


def _paragraphs(text: str) -> list[str]:
    """The non-empty paragraphs of `text`, each on one line."""
    paragraphs = _BLANK_LINE.split("\n".join(_clean(text).splitlines()))
    return [line for line in map(_one_line, paragraphs) if line]


def _annotated_paragraphs(text: str, sentences: list[CitedSentence]) -> list[list[Inline]]:
    """The paragraphs of `text` as runs of text, each sentence followed by its `Notes`.

    Sentence offsets index the raw text, so it is cut at paragraph breaks and sentence ends first
    and each run cleaned after; whitespace collapses as in `_paragraphs`.
    """
    breaks = list(_BLANK_LINE.finditer(text))
    starts = [0, *(m.end() for m in breaks)]
    ends = [*(m.start() for m in breaks), len(text)]
    marks: list[list[tuple[int, Notes]]] = [[] for _ in starts]
    for sentence in sorted(sentences, key=lambda s: s.end):
        index = max(0, bisect_left(starts, sentence.end) - 1)  # the paragraph it ends in
        cut = min(sentence.end, ends[index])
        marks[index].append((cut, Notes(_unique(sentence.citations))))
    paragraphs = [
        _paragraph_runs(text, start, end, notes)
        for start, end, notes in zip(starts, ends, marks, strict=True)
    ]
    return [runs for runs in paragraphs if runs]


def _paragraph_runs(
    text: str, start: int, end: int, marks: list[tuple[int, Notes]]
) -> list[Inline]:
    """text[start:end] as text runs (cleaned, any whitespace one space) with the `marks` at their
    offsets; empty when the paragraph holds no text."""
    bounds = [start, *(cut for cut, _ in marks), end]
    pieces = [
        re.sub(r"\s+", " ", _clean(text[a:b])) for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    pieces[0] = pieces[0].lstrip()
    pieces[-1] = pieces[-1].rstrip()
    if not "".join(pieces).strip():
        return []
    runs: list[Inline] = [pieces[0]]
    for (_, notes), piece in zip(marks, pieces[1:], strict=True):
        runs.extend([notes, piece])
    return [run for run in runs if run != ""]


def _trim(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` cut to at most `limit` characters at a word boundary, marked by an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:  # a word boundary that keeps most of the quote
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def _quote(citation: Citation) -> str:
    return _trim(_one_line(citation.quote))


def _unique(citations: Iterable[Citation]) -> list[Citation]:
    """`citations` in order, without those that print the same as an earlier one."""
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for citation in citations:
        key = (_one_line(citation.filename), _one_line(citation.page_label), _quote(citation))
        if key not in seen:
            seen.add(key)
            unique.append(citation)
    return unique


def _citation_text(citation: Citation, escape: Callable[[str], str] = str) -> str:
    """``filename, p. label: “quote”`` (or ``cite: “quote”``) on one line, each part passed
    through `escape`."""
    if citation.cite:
        return f"{escape(_one_line(citation.cite))}: “{escape(_quote(citation))}”"
    filename = escape(_one_line(citation.filename))
    label = _one_line(citation.page_label)
    page = f", p. {escape(label)}" if label else ""
    return f"{filename}{page}: “{escape(_quote(citation))}”"


# --- Markdown -------------------------------------------------------------------------------


def _escape_inline(text: str) -> str:
    """`text` escaped so that Markdown renders it literally anywhere but a paragraph's start."""
    return _MD_INLINE_SPECIAL.sub(r"\\\1", text)


def _escape_markdown(line: str) -> str:
    """`line` (one paragraph on one line) escaped so that Markdown renders it literally."""
    escaped = _MD_LINE_START_SPECIAL.sub(r"\\\1", _escape_inline(line))
    return _MD_ORDERED_LIST.sub(r"\1\\\2", escaped)


def _markdown_note(number: int, citation: Citation) -> str:
    return f"[^{number}]: {_citation_text(citation, _escape_markdown)}"


def _markdown_sentences(section: ExportSection, first_note: int) -> tuple[list[str], list[str]]:
    """A sentence-cited section's paragraphs and notes: a reference after each supported
    sentence, the unsupported marker after each other one."""
    paragraphs, notes = [], []
    for runs in _annotated_paragraphs(section.text, section.sentences or []):
        line = ""
        for run in runs:
            if isinstance(run, str):
                line += _escape_inline(run) if line else _escape_markdown(run)
                continue
            if not run.citations:
                line += f" *{_escape_inline(UNSUPPORTED_MARK)}*"
            for citation in run.citations:
                number = first_note + len(notes)
                notes.append(_markdown_note(number, citation))
                line += f"[^{number}]"
        paragraphs.append(line)
    return paragraphs, notes


def _markdown_section(section: ExportSection, first_note: int) -> tuple[str, list[str]]:
    """The section's Markdown and its footnote definitions, numbered from `first_note`."""
    heading = f"## {_escape_markdown(_one_line(section.heading))}"
    if section.sentences is not None:
        paragraphs, notes = _markdown_sentences(section, first_note)
        return "\n\n".join([heading, *paragraphs]), notes
    paragraphs = [_escape_markdown(paragraph) for paragraph in _paragraphs(section.text)]
    notes = [
        _markdown_note(number, citation)
        for number, citation in enumerate(_unique(section.citations), start=first_note)
    ]
    references = "".join(f"[^{number}]" for number in range(first_note, first_note + len(notes)))
    if references:
        if paragraphs:
            paragraphs[-1] += references
        else:
            paragraphs.append(references)
    return "\n\n".join([heading, *paragraphs]), notes


def to_markdown(
    title: str,
    sections: list[ExportSection],
    instruction: str | None = None,
    bibliography: list[str] | None = None,
) -> str:
    """The draft as Markdown, citations as footnotes numbered across the whole document, and
    the `bibliography` entries (if any) in a last section."""
    blocks = [f"# {_escape_markdown(_one_line(title))}"]
    instruction_line = _one_line(instruction or "")
    if instruction_line:
        blocks.append(f"*{_escape_markdown(instruction_line)}*")
    notes: list[str] = []
    for section in sections:
        block, section_notes = _markdown_section(section, first_note=len(notes) + 1)
        blocks.append(block)
        notes.extend(section_notes)
    if bibliography:
        blocks.append(f"## {BIBLIOGRAPHY_HEADING}")
        blocks.extend(_escape_markdown(_one_line(entry)) for entry in bibliography)
    if notes:
        blocks.append("\n".join(notes))
    return "\n\n".join(blocks) + "\n"


# --- DOCX -----------------------------------------------------------------------------------


def _element(tag: str, attrs: dict[str, str] | None = None, *children: XmlElement) -> XmlElement:
    """A WordprocessingML element such as ``w:p``; attribute names are prefixed too."""
    element = OxmlElement(tag, {qn(name): value for name, value in (attrs or {}).items()})
    element.extend(children)
    return element


def _text_element(text: str) -> XmlElement:
    element = _element("w:t", {"xml:space": "preserve"})
    element.text = text  # lxml escapes <, & and quotes on serialisation
    return element


def _footnote_run(content: XmlElement, *, superscript: bool = False) -> XmlElement:
    """A run of footnote-sized text; ``w:sz`` must precede ``w:vertAlign`` in ``w:rPr``."""
    properties = _element("w:rPr", None, _element("w:sz", {"w:val": FOOTNOTE_FONT_SIZE}))
    if superscript:
        properties.append(_element("w:vertAlign", {"w:val": "superscript"}))
    return _element("w:r", None, properties, content)


def _footnote_element(footnote_id: int, text: str) -> XmlElement:
    """``<w:footnote w:id="n">``: the superscript note number, then `text`."""
    paragraph = _element(
        "w:p",
        None,
        _footnote_run(_element("w:footnoteRef"), superscript=True),
        _footnote_run(_text_element(f" {text}")),
    )
    return _element("w:footnote", {"w:id": str(footnote_id)}, paragraph)


def _footnotes_part(document: Document) -> XmlPart:
    """The document's footnotes part, added if its template has none.

    python-docx's default template has no footnotes part. A template made in Word usually has
    one, which python-docx loads as an opaque `Part` holding bytes; it is replaced by an
    equivalent `XmlPart` (same name, same relationships) so that notes can be appended to it.
    """
    document_part = document.part
    for rId, rel in list(document_part.rels.items()):
        if rel.reltype == RT.FOOTNOTES and not rel.is_external:
            existing = rel.target_part
            if isinstance(existing, XmlPart):
                return existing
            document_part.drop_rel(rId)
            return _relate(document_part, _as_xml_part(existing))
    part = XmlPart(
        PackURI(FOOTNOTES_PARTNAME),
        CT.WML_FOOTNOTES,
        parse_xml(_EMPTY_FOOTNOTES_XML),
        document_part.package,
    )
    return _relate(document_part, part)


def _as_xml_part(part: Part) -> XmlPart:
    xml_part = XmlPart.load(part.partname, part.content_type, part.blob, part.package)
    for rel in part.rels.values():
        target = rel.target_ref if rel.is_external else rel.target_part
        xml_part.load_rel(rel.reltype, target, rel.rId, rel.is_external)
    return xml_part


def _relate(document_part: Part, footnotes_part: XmlPart) -> XmlPart:
    document_part.relate_to(footnotes_part, RT.FOOTNOTES)
    return footnotes_part


def _next_footnote_id(footnotes: XmlElement) -> int:
    """One more than the largest footnote id in use (ids -1 and 0 are the separators)."""
    ids = [int(note.get(qn("w:id"), "0")) for note in footnotes.iterchildren(qn("w:footnote"))]
    return max([0, *ids]) + 1


def _add_footnote_reference(paragraph: Paragraph, footnote_id: int) -> None:
    """Append ``<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:footnoteReference/>``."""
    run = paragraph.add_run()
    run.font.superscript = True
    # python-docx has no API for this; `_r` is the run's w:r element.
    run._r.append(_element("w:footnoteReference", {"w:id": str(footnote_id)}))


def _add_reference_separator(paragraph: Paragraph) -> None:
    """A superscript comma, so that notes 1 and 2 do not read as note 12."""
    paragraph.add_run(",").font.superscript = True


def _add_notes(paragraph: Paragraph, footnotes: XmlElement, notes: Notes, first_id: int) -> int:
    """Footnotes for one sentence (or its unsupported marker); return the next free id."""
    if not notes.citations:
        paragraph.add_run(f" {UNSUPPORTED_MARK}").italic = True
    for footnote_id, citation in enumerate(notes.citations, start=first_id):
        if footnote_id > first_id:
            _add_reference_separator(paragraph)
        _add_footnote_reference(paragraph, footnote_id)
        footnotes.append(_footnote_element(footnote_id, _citation_text(citation)))
    return first_id + len(notes.citations)


def _add_text(
    paragraph: Paragraph, text: str, changed: ChangedText | None, revisions: Revisions
) -> None:
    """A run of the section's text; with a pending change, its new words as insertions and the
    words deleted before them as deletions."""
    if changed is None:
        paragraph.add_run(text)
        return
    for kind, piece in changed.pieces(text):
        if kind == "same":
            paragraph.add_run(piece)
        else:  # python-docx has no API for revisions; `_p` is the paragraph's w:p element
            mark = revisions.inserted if kind == "new" else revisions.deleted
            paragraph._p.append(mark(piece))


def _add_sentences(
    document: Document,
    footnotes: XmlElement,
    section: ExportSection,
    first_id: int,
    revisions: Revisions,
) -> int:
    """Add a sentence-cited section's paragraphs with each sentence's notes after it, and its
    pending change (if any) as tracked revisions."""
    next_id = first_id
    changed = None
    if section.previous is not None:
        changed = ChangedText(word_change(_clean(section.previous), _clean(section.text)))
    paragraph = None
    for runs in _annotated_paragraphs(section.text, section.sentences or []):
        paragraph = document.add_paragraph()
        for run in runs:
            if isinstance(run, str):
                _add_text(paragraph, run, changed, revisions)
            else:
                next_id = _add_notes(paragraph, footnotes, run, next_id)
    if changed is not None and changed.rest():
        paragraph = paragraph or document.add_paragraph()
        paragraph._p.append(revisions.deleted(changed.rest()))
    return next_id


def _add_section(
    document: Document,
    footnotes: XmlElement,
    section: ExportSection,
    first_id: int,
    revisions: Revisions,
) -> int:
    """Add the section's heading, paragraphs and footnotes; return the next free footnote id."""
    document.add_heading(_one_line(section.heading), level=1)
    if section.sentences is not None:
        return _add_sentences(document, footnotes, section, first_id, revisions)
    paragraphs = [document.add_paragraph(text) for text in _paragraphs(section.text)]
    citations = _unique(section.citations)
    if not citations:
        return first_id
    anchor = paragraphs[-1] if paragraphs else document.add_paragraph()
    for footnote_id, citation in enumerate(citations, start=first_id):
        if footnote_id > first_id:
            _add_reference_separator(anchor)
        _add_footnote_reference(anchor, footnote_id)
        footnotes.append(_footnote_element(footnote_id, _citation_text(citation)))
    return first_id + len(citations)


def write_docx(
    path: str | Path,
    title: str,
    sections: list[ExportSection],
    instruction: str | None = None,
    bibliography: list[str] | None = None,
    *,
    template: str | Path | None = None,
) -> Path:
    """Write the draft as a Word document with real footnotes, and the `bibliography` entries
    (if any) in a last section; return its path.

    `template` is a .docx whose styles (and any content) the export builds on; by default,
    python-docx's own.
    """
    document = docx.Document(str(template) if template is not None else None)
    footnotes = _footnotes_part(document).element
    document.add_heading(_one_line(title), level=0)
    instruction_line = _one_line(instruction or "")
    if instruction_line:
        document.add_paragraph().add_run(instruction_line).italic = True
    next_id = _next_footnote_id(footnotes)
    revisions = Revisions()
    for section in sections:
        next_id = _add_section(document, footnotes, section, next_id, revisions)
    if bibliography:
        document.add_heading(BIBLIOGRAPHY_HEADING, level=1)
        for entry in bibliography:
            document.add_paragraph(_one_line(entry))
    path = Path(path)
    document.save(str(path))
    return path


def export_draft(
    path: str | Path,
    fmt: Literal["md", "docx"],
    title: str,
    sections: list[ExportSection],
    instruction: str | None = None,
    bibliography: list[str] | None = None,
) -> Path:
    """Write the draft to `path` as Markdown ("md") or Word ("docx"); return the path."""
    if fmt == "md":
        path = Path(path)
        path.write_text(to_markdown(title, sections, instruction, bibliography), encoding="utf-8")
        return path
    if fmt == "docx":
        return write_docx(path, title, sections, instruction, bibliography)
    raise ValueError(f"unknown export format {fmt!r}; expected 'md' or 'docx'")
