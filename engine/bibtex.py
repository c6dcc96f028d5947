"""BibTeX in and out: entries read into `DocumentMetadata`, metadata written back as entries.

bibtexparser (v2) does the parsing and writing. It is lenient: a block it cannot read is kept
aside with the reason instead of failing the whole file, so a malformed .bib still fills the
documents its good entries describe, and says which entries it skipped and why. A value this
app checks (year, date, DOI) that does not pass is kept as an unchecked extra field, so writing
the library back out loses nothing.

Fields beyond BibTeX's own: `parties` (" and "-separated, as authors are) and biblatex's `date`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import bibtexparser
from bibtexparser import middlewares
from bibtexparser.model import Entry, Field

from engine.errors import PalimpsestError, first_line
from engine.metadata import DocumentMetadata, MetadataError, names, normalise

MAX_BIB_BYTES = 20 * 2**20
# bibtexparser logs each block it skips; `BibFile.problems` reports them once, in our words.
logging.getLogger("bibtexparser").addHandler(logging.NullHandler())
logging.getLogger("bibtexparser").propagate = False
_OWN_FIELDS = {"title", "author", "year", "doi", "parties", "date", "file"}
_KEY_WORD = re.compile(r"[^\W\d_]+")


class BibtexError(PalimpsestError):
    """A .bib file that cannot be read at all (missing, too large, not text)."""


@dataclass(frozen=True)
class BibEntry:
    metadata: DocumentMetadata
    files: tuple[str, ...]  # the file names its `file` field lists (folders dropped)


@dataclass(frozen=True)
class BibFile:
    entries: list[BibEntry]
    problems: list[str]  # one line per block or value that could not be used


def read_bib_file(path: str | Path) -> BibFile:
    """The entries of the .bib file at `path`; raises `BibtexError` when it cannot be read."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BIB_BYTES:
            raise BibtexError(f"{path.name} is larger than {MAX_BIB_BYTES // 2**20} MB")
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")  # older .bib files; every byte decodes
    except OSError as error:
        raise BibtexError(f"cannot read {path.name}: {first_line(error)}") from error
    return parse_bibtex(text)


def parse_bibtex(text: str) -> BibFile:
    """The entries of a .bib text, and what could not be read in it."""
    parsed = bibtexparser.parse_string(
        text,
        append_middleware=[middlewares.LatexDecodingMiddleware(), middlewares.SeparateCoAuthors()],
    )
    problems = [
        f"line {block.start_line + 1}: skipped ({_reason(block.error)})"
        for block in parsed.failed_blocks
    ]
    entries = []
    for entry in parsed.entries:
        metadata, entry_problems = _metadata(entry)
        entries.append(BibEntry(metadata, _file_names(_text(entry, "file"))))
        problems.extend(f"{entry.key}: {problem}" for problem in entry_problems)
    return BibFile(entries, problems)


def _reason(error: Exception) -> str:
    """Why bibtexparser gave up on a block, in one line."""
    return first_line(Exception(getattr(error, "abort_reason", "") or error))


def _metadata(entry: Entry) -> tuple[DocumentMetadata, list[str]]:
    extra = {f.key.lower(): _text(entry, f.key) for f in entry.fields}
    extra = {k: v for k, v in extra.items() if k not in _OWN_FIELDS and v}
    checked, problems = {}, []
    for name in ("year", "date", "doi"):
        value = _text(entry, name)
        try:
            checked[name] = normalise(name, value)
        except MetadataError as error:
            problems.append(f"{error}; kept as given")
            extra[name] = value
    metadata = DocumentMetadata(
        title=_text(entry, "title"),
        authors=names(_value(entry, "author")),
        parties=names(_value(entry, "parties")),
        entry_type=entry.entry_type.lower(),
        key=entry.key,
        extra=extra,
        **checked,
    )
    return metadata, problems


def _value(entry: Entry, name: str) -> str | list[str]:
    field = next((f for f in entry.fields if f.key.lower() == name), None)
    return field.value if field is not None else ""


def _text(entry: Entry, name: str) -> str:
    value = _value(entry, name)
    return " ".join((" and ".join(value) if isinstance(value, list) else str(value)).split())


def _file_names(value: str) -> tuple[str, ...]:
    """The PDF names in a `file` field: "paper.pdf", "/home/me/paper.pdf", JabRef's
    ":paper.pdf:PDF" or Zotero's "Full Text:files/12/paper.pdf:application/pdf", ";"-separated."""
    found = []
    for item in value.split(";"):
        for part in item.split(":"):
            if part.strip().lower().endswith(".pdf"):
                found.append(re.split(r"[\\/]", part.strip())[-1])
    return tuple(found)


# --- writing --------------------------------------------------------------------------------


def to_bibtex(documents: Iterable[tuple[str, DocumentMetadata]]) -> str:
    """(file name, metadata) pairs as one .bib text, one entry each; a document without a
    citation key gets one made from its first author or party (or title) and year."""
    library = bibtexparser.Library()
    used: set[str] = set()
    for filename, metadata in documents:
        key = unique_key(metadata.key or make_key(metadata, filename), used)
        library.add(Entry(metadata.entry_type or "misc", key, _fields(metadata, filename)))
    text = bibtexparser.write_string(library).strip()
    return text + "\n" if text else ""


def _fields(metadata: DocumentMetadata, filename: str) -> list[Field]:
    values = {
        "title": metadata.title,
        "author": " and ".join(metadata.authors),
        "parties": " and ".join(metadata.parties),
        "year": metadata.issued_year,
        "date": metadata.date,
        "doi": metadata.doi,
        **metadata.extra,
        "file": filename,
    }
    return [Field(name, _balanced(value)) for name, value in values.items() if value]


def _balanced(value: str) -> str:
    """`value` safe inside braces: unbalanced braces would end the field early."""
    depth = 0
    for char in value:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    return value if depth == 0 else value.replace("{", "").replace("}", "")


def make_key(metadata: DocumentMetadata, filename: str) -> str:
    """ "okafor2024": the first word of the first author's family name (or party, or title,
    or file name), lower case, with the year."""
    first = (metadata.authors or metadata.parties or (metadata.title or filename,))[0]
    family = (
        first.split(",")[0] if "," in first else first.split()[-1] if metadata.authors else first
    )
    words = _KEY_WORD.findall(family)
    return (words[0].lower() if words else "doc") + metadata.issued_year


def unique_key(key: str, used: set[str]) -> str:
    """`key`, or `key` with the first of a, b, c... that makes it unused; records it."""
    candidate, suffix = key, ord("a")
    while candidate in used:
        candidate = f"{key}{chr(suffix)}"
        suffix += 1
    used.add(candidate)
    return candidate
