"""A draft's citations in a citation style, and its bibliography (`Workspace.export(style=)`).

Each sentence's citations are resolved to their documents' metadata and formatted together by
`engine.citations` (a numeric style numbers sources in the order the draft first cites them);
the legal style pins each citation to the clause or section its quote falls in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.attribution import SentenceCitation, SentenceSupport
from engine.citations import STYLES, PinCite, Source, csl_type, format_citations
from engine.errors import PalimpsestError
from engine.metadata import DocumentMetadata
from engine.pin_cites import clause_at, section_at

if TYPE_CHECKING:
    from engine.library import Library

_NONE = DocumentMetadata()  # a document deleted since it was cited


def style_citations(
    library: Library, style: str, cited: list[list[SentenceSupport]]
) -> tuple[list[list[list[str]]], list[str]]:
    """Every citation of every sentence of every section as `style` prints it (numbered in the
    order the draft first cites them, for a numeric style), and the bibliography."""
    if style not in STYLES:
        raise PalimpsestError(f"unknown citation style {style!r}: choose {', '.join(STYLES)}")
    metadata = library.metadata()
    citations = [c for sentences in cited for s in sentences for c in s.citations]
    sources = {
        c.hit.doc_id: Source(c.hit.doc_id, c.hit.filename, metadata.get(c.hit.doc_id, _NONE))
        for c in citations
    }
    pins = [_pin_cite(library, style, sources[c.hit.doc_id], c) for c in citations]
    formatted, bibliography = format_citations(style, sources, pins)
    styled = iter(formatted)  # one text per citation, in the order of `citations`
    nested = [[[next(styled) for _ in s.citations] for s in sentences] for sentences in cited]
    return nested, bibliography


def _pin_cite(library: Library, style: str, source: Source, citation: SentenceCitation) -> PinCite:
    """The cited page, with (in the legal style) the clause or section the quote falls in."""
    hit = citation.hit
    if style != "legal":
        return PinCite(hit.doc_id, hit.page_label)
    page = library.page(hit.doc_id, hit.page_index)
    text = page.text if page is not None else ""
    locate = section_at if csl_type(source.metadata) == "legislation" else clause_at
    return PinCite(hit.doc_id, hit.page_label, locate(text, citation.quote_start))
