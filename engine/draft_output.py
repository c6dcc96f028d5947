"""A draft as `show --json` prints it (DESIGN section 3) and as a Markdown or DOCX file, made from
what the draft says (`DraftReading`): no model and no torch, so `show` and `export` start at once.

Sources and citations need the library (a search, numpy query embeddings, Chroma's vectors);
citations stored with the text they describe are used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.attribution import SentenceSupport, attribute
from engine.conflicts import find_conflicts
from engine.draft_reading import BlockReading, DraftReading
from engine.errors import DraftError
from engine.export import Citation, CitedSentence, ExportSection, export_draft
from engine.provenance import current_citations
from engine.styled_export import style_citations

if TYPE_CHECKING:  # only in annotations: reading a stored draft needs no stores
    from engine.library import Library

FORMATS = ("md", "docx")


def sentence_citations(library: Library, block: BlockReading) -> list[SentenceSupport]:
    provenance = block.provenance
    text = block.decoded.text
    return current_citations(library, text, provenance.targets, provenance.citations).sentences


def block_json(library: Library, block: BlockReading) -> dict:
    """One block as DESIGN section 3 shows it: text, step, pins and sources; once finished, each
    sentence with its citations and where those disagree; what it read round by round; and the
    base of its pending tracked change."""
    decoded, provenance = block.decoded, block.provenance
    cited = decoded.done and decoded.text.strip() != ""
    targets = provenance.targets or None
    sources = (
        [s.to_json() for s in attribute(library, decoded.text, k=3, doc_ids=targets)]
        if cited
        else [hit.to_json() for hit in provenance.evidence]
    )
    sentences = sentence_citations(library, block) if cited else []
    conflicts = find_conflicts([c.hit for s in sentences for c in s.citations])
    return {
        "heading": block.heading,
        "text": decoded.shown,
        "step": block.step,
        "steps_total": block.steps_total,
        "done": decoded.done,
        "targets": provenance.targets,
        "pins": [{"start": s, "end": e, "text": t} for s, e, t in decoded.pins],
        "sources": sources,
        "sentences": [s.to_json() for s in sentences],
        "conflicts": [c.to_json() for c in conflicts],
        "read": [r.to_json() for r in provenance.read],
        "redline": provenance.redline,
    }


def draft_json(library: Library, reading: DraftReading) -> dict:
    return {
        "draft_id": reading.draft_id,
        "title": reading.title,
        "step": reading.step,
        "done": reading.done,
        "blocks": [block_json(library, block) for block in reading.blocks],
    }


def export_reading(
    library: Library, reading: DraftReading, fmt: str, path: str | Path, style: str | None = None
) -> Path:
    """Write the draft with a footnote per citation of each supported sentence, and the
    unsupported sentences marked; citations in `style` with a bibliography (None: file name and
    page label). A section's pending tracked change goes into a DOCX as Word revisions."""
    if fmt not in FORMATS:
        raise DraftError(f"unknown export format {fmt!r}: choose md or docx")
    cited = [sentence_citations(library, block) for block in reading.blocks]
    styled, bibliography = style_citations(library, style, cited) if style else ([], None)
    sections = []
    for index, (block, sentences) in enumerate(zip(reading.blocks, cited, strict=True)):
        cites = styled[index] if style else [[""] * len(s.citations) for s in sentences]
        notes = [
            CitedSentence(s.start, s.end, _evidence_quotes(s, sentence_cites))
            for s, sentence_cites in zip(sentences, cites, strict=True)
        ]
        base = block.provenance.redline if block.decoded.done else None
        sections.append(
            ExportSection(block.heading, block.decoded.text, sentences=notes, previous=base)
        )
    return export_draft(path, fmt, reading.title, sections, reading.instruction, bibliography)


def _evidence_quotes(sentence: SentenceSupport, cites: list[str]) -> list[Citation]:
    """The sentence's citations as footnotes, each quoting the passage's matching sentence
    (`cites`: each as a citation style prints it, or empty)."""
    return [
        Citation(c.hit.filename, c.hit.page_label, c.quote(), cite)
        for c, cite in zip(sentence.citations, cites, strict=True)
    ]
