"""Fill documents' metadata from a .bib file: which entry describes which PDF.

An entry is matched to a document of the library by, in this order: its `file` field naming the
document's file, its DOI equal to the document's, or its title close to the document's (as read
from the PDF). Each document takes at most one entry and each entry fills at most one document.
The entry's fields win over what was read from the PDF; fields the entry lacks keep theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING

from engine.bibtex import BibEntry, read_bib_file
from engine.metadata import DocumentMetadata

if TYPE_CHECKING:
    from engine.library import Library

TITLE_SIMILARITY = 0.85  # difflib ratio of the normalised titles; reworded titles stay apart


@dataclass(frozen=True)
class BibMatch:
    doc_id: str
    filename: str
    key: str
    how: str  # "file", "doi" or "title"


@dataclass
class BibImport:
    source: str
    matched: list[BibMatch] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # keys of entries no document took
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the import did, one line each, as the CLI and the upload log print it."""
        lines = [f"bib: {self.source}: {m.key} -> {m.filename} (by {m.how})" for m in self.matched]
        if self.unmatched:
            lines.append(f"bib: {self.source}: no document for {', '.join(self.unmatched)}")
        lines += [f"bib: {self.source}: {problem}" for problem in self.problems]
        if not lines:
            lines.append(f"bib: {self.source}: no entries")
        return lines


def import_bib_file(library: Library, path: str | Path) -> BibImport:
    """Read the .bib at `path` and fill the metadata of the documents its entries describe."""
    bib = read_bib_file(path)
    report = BibImport(Path(path).name, problems=list(bib.problems))
    documents = {record.doc_id: record.filename for record in library.documents()}
    current = library.metadata()
    candidates = {doc_id: current.get(doc_id, DocumentMetadata()) for doc_id in documents}
    for entry, doc_id, how in match_entries(bib.entries, documents, candidates):
        library.set_metadata(doc_id, entry.metadata.filled_from(candidates[doc_id]))
        report.matched.append(BibMatch(doc_id, documents[doc_id], entry.metadata.key, how))
    taken = {m.key for m in report.matched}
    report.unmatched = [e.metadata.key for e in bib.entries if e.metadata.key not in taken]
    return report


def match_entries(
    entries: list[BibEntry], filenames: dict[str, str], metadata: dict[str, DocumentMetadata]
) -> list[tuple[BibEntry, str, str]]:
    """(entry, doc_id, how) for each entry that describes one of the documents, whose file
    names and metadata are given by doc_id."""
    free = dict(filenames)
    matches = []
    for how in ("file", "doi", "title"):
        for entry in entries:
            if any(entry is m[0] for m in matches):
                continue
            doc_id = _find(how, entry, free, metadata)
            if doc_id is not None:
                matches.append((entry, doc_id, how))
                del free[doc_id]
    return matches


def _find(
    how: str, entry: BibEntry, free: dict[str, str], metadata: dict[str, DocumentMetadata]
) -> str | None:
    if how == "file":
        wanted = {name.lower() for name in entry.files}
        return next((d for d, name in free.items() if name.lower() in wanted), None)
    if how == "doi":
        doi = entry.metadata.doi.lower()
        return next((d for d in free if doi and metadata[d].doi.lower() == doi), None)
    title = _words(entry.metadata.title)
    scored = [(_similarity(title, _words(metadata[d].title)), d) for d in free]
    best = max(scored, default=(0.0, None))
    return best[1] if title and best[0] >= TITLE_SIMILARITY else None


def _words(title: str) -> str:
    return " ".join(re.findall(r"\w+", title.lower()))


def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio() if a and b else 0.0
