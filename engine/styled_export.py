"""A draft exported with its citations in a citation style and a bibliography at the end.

Without a style the export is the workspace's own (``filename, p. label`` footnotes). With one,
each sentence's citations are resolved to their documents' metadata and formatted together by
`engine.citations` (a numeric style numbers sources in the order the draft first cites them);
the legal style pins each citation to the clause or section its quote falls in. The sentences
and their citations are the workspace's, as in the plain export.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.attribution import SentenceCitation
from engine.citations import STYLES, PinCite, Source, csl_type, format_citations
from engine.errors import PalimpsestError
from engine.export import Citation, CitedSentence, ExportSection, export_draft
from engine.metadata import DocumentMetadata
from engine.pin_cites import clause_at, section_at

if TYPE_CHECKING:
    from engine.library import Library
    from engine.workspace import Workspace

_NONE = DocumentMetadata()  # a document deleted since it was cited


def export_styled(
    workspace: Workspace, draft_id: str, fmt: str, path: str | Path, style: str | None = None
) -> Path:
    """Write the draft as Markdown ("md") or Word ("docx"), its citations in `style` (one of
    `STYLES`; None: file name and page label, no bibliography); return the path."""
    if style is None:
        return workspace.export(draft_id, fmt, path)
    if style not in STYLES:
        raise PalimpsestError(f"unknown citation style {style!r}: choose {', '.join(STYLES)}")
    if fmt not in ("md", "docx"):
        raise PalimpsestError(f"unknown export format {fmt!r}: choose md or docx")
    draft, drafter = workspace.open(draft_id)
    library = workspace.library
    texts = [drafter.text(draft, index) for index in range(len(draft.blocks))]
    cited = [workspace.citations(drafter, draft, index) for index in range(len(draft.blocks))]
    metadata = library.metadata()
    citations = [c for sentences in cited for s in sentences for c in s.citations]
    sources = {
        c.hit.doc_id: Source(c.hit.doc_id, c.hit.filename, metadata.get(c.hit.doc_id, _NONE))
        for c in citations
    }
    pins = [_pin_cite(library, style, sources[c.hit.doc_id], c) for c in citations]
    formatted, bibliography = format_citations(style, sources, pins)
    styled = iter(formatted)  # one text per citation, taken below in the order of `citations`
    sections = [
        ExportSection(
            block.heading,
            text,
            sentences=[
                CitedSentence(
                    s.start,
                    s.end,
                    [
                        Citation(c.hit.filename, c.hit.page_label, c.quote(), next(styled))
                        for c in s.citations
                    ],
                )
                for s in sentences
            ],
        )
        for block, text, sentences in zip(draft.blocks, texts, cited, strict=True)
    ]
    return export_draft(path, fmt, draft.title, sections, draft.instruction, bibliography)


def _pin_cite(library: Library, style: str, source: Source, citation: SentenceCitation) -> PinCite:
    """The cited page, with (in the legal style) the clause or section the quote falls in."""
    hit = citation.hit
    if style != "legal":
        return PinCite(hit.doc_id, hit.page_label)
    page = library.page(hit.doc_id, hit.page_index)
    text = page.text if page is not None else ""
    locate = section_at if csl_type(source.metadata) == "legislation" else clause_at
    return PinCite(hit.doc_id, hit.page_label, locate(text, citation.quote_start))
