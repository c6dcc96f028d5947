"""Citation styles: a cited page of a document as a reader of the field expects to see it, and
the bibliography of everything cited.

citeproc-py formats both from CSL (Citation Style Language) styles, the format Zotero, Mendeley
and pandoc use:

- author-date: Harvard (Cite Them Right), the CSL style citeproc-py ships: "(Okafor and
  Brandt, 2024, p. 3)";
- numeric: `csl/numeric.csl`, sources numbered in order of first citation: "[1, p. 3]";
- legal: `csl/legal.csl`, an instrument by its name with a pin cite: "Master Services
  Agreement, cl. 3.2, p. 3", a statute's section as "s. 4(2)".

Each document becomes one CSL item built from its `DocumentMetadata` (names split by BibTeX's
rules through bibtexparser); a contract's parties stand as its authors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bibtexparser.middlewares.names import parse_single_name_into_parts
from citeproc import (
    Citation,
    CitationItem,
    CitationStylesBibliography,
    CitationStylesStyle,
    formatter,
)
from citeproc.source import Locator
from citeproc.source.json import CiteProcJSON

from engine.metadata import DocumentMetadata

STYLES = ("author-date", "numeric", "legal")
_CSL_DIR = Path(__file__).parent / "csl"
_CSL = {
    "author-date": "harvard-cite-them-right",  # shipped inside citeproc-py
    "numeric": str(_CSL_DIR / "numeric.csl"),
    "legal": str(_CSL_DIR / "legal.csl"),
}
# BibTeX entry types -> CSL item types
_CSL_TYPES = {
    "article": "article-journal",
    "book": "book",
    "inbook": "chapter",
    "incollection": "chapter",
    "inproceedings": "paper-conference",
    "conference": "paper-conference",
    "techreport": "report",
    "report": "report",
    "phdthesis": "thesis",
    "mastersthesis": "thesis",
    "thesis": "thesis",
    "legislation": "legislation",
    "statute": "legislation",
    "jurisdiction": "legal_case",
    "online": "webpage",
}
_LEGISLATION_TITLE = re.compile(r"\b(Act|Regulations?|Ordinance|Code|Directive)\b.*\b\d{4}\b")
# BibTeX fields kept in `DocumentMetadata.extra` -> CSL variables
_EXTRA_VARIABLES = {
    "journal": "container-title",
    "booktitle": "container-title",
    "volume": "volume",
    "number": "issue",
    "pages": "page",
    "publisher": "publisher",
    "url": "URL",
}


@dataclass(frozen=True)
class Source:
    """A document as a citation names it."""

    doc_id: str
    filename: str
    metadata: DocumentMetadata


@dataclass(frozen=True)
class PinCite:
    """One citation: a page of a document, and the clause or section on it when known."""

    doc_id: str
    page_label: str
    pin: str = ""


def format_citations(
    style: str, sources: dict[str, Source], cites: list[PinCite]
) -> tuple[list[str], list[str]]:
    """Each of `cites` (in the order the text makes them: numeric styles number by it) as the
    style prints it, and the bibliography of the cited sources, one entry each."""
    if style not in STYLES:
        raise ValueError(f"unknown citation style {style!r}; choose one of {', '.join(STYLES)}")
    cited = {cite.doc_id: sources[cite.doc_id] for cite in cites}
    processor = CitationStylesBibliography(
        CitationStylesStyle(_CSL[style], validate=False),
        CiteProcJSON([csl_item(source) for source in cited.values()]),
        formatter.plain,
    )
    citations = [Citation([_cite_item(style, cite, cited[cite.doc_id])]) for cite in cites]
    for citation in citations:  # every cite registered before any is rendered, for numbering
        processor.register(citation)
    processor.sort()
    texts = [str(processor.cite(citation, lambda item: None)) for citation in citations]
    return texts, [str(entry) for entry in processor.bibliography()]


def _cite_item(style: str, cite: PinCite, source: Source) -> CitationItem:
    label = cite.page_label
    if style == "legal" and cite.pin:
        # CSL has one locator per cite: the clause; the page follows it.
        suffix = f", p. {label}" if label else ""
        return CitationItem(source.doc_id, locator=Locator("section", cite.pin), suffix=suffix)
    if label:
        return CitationItem(source.doc_id, locator=Locator("page", label))
    return CitationItem(source.doc_id)


def csl_type(metadata: DocumentMetadata) -> str:
    if metadata.entry_type in _CSL_TYPES:
        return _CSL_TYPES[metadata.entry_type]
    if metadata.is_instrument:
        return "document"
    if _LEGISLATION_TITLE.search(metadata.title):
        return "legislation"
    return "article"


def csl_item(source: Source) -> dict:
    """The document as a CSL-JSON item; its title is the file name's stem when it has none."""
    metadata = source.metadata
    item: dict = {
        "id": source.doc_id,
        "type": csl_type(metadata),
        "title": metadata.title or Path(source.filename).stem,
    }
    if metadata.is_instrument:
        item["author"] = [{"literal": party} for party in metadata.parties]
    elif metadata.authors:
        item["author"] = [csl_name(author) for author in metadata.authors]
    issued = [int(part) for part in (metadata.date or metadata.year).split("-") if part]
    if issued:
        item["issued"] = {"date-parts": [issued]}
    if metadata.doi:
        item["DOI"] = metadata.doi
    for name, variable in _EXTRA_VARIABLES.items():
        if metadata.extra.get(name):
            item.setdefault(variable, metadata.extra[name])
    return item


def csl_name(name: str) -> dict:
    """A person's name as CSL parts, split by BibTeX's rules ("Okafor, Amara N.", "Amara N.
    Okafor" and "van der Berg, Jan" all work); a one-part name stays whole."""
    parts = parse_single_name_into_parts(name)
    if not parts.first and not parts.von:
        return {"literal": " ".join(parts.last).strip("{}")}
    csl = {"family": " ".join(parts.last), "given": " ".join(parts.first)}
    if parts.von:
        csl["non-dropping-particle"] = " ".join(parts.von)
    if parts.jr:
        csl["suffix"] = " ".join(parts.jr)
    return csl
