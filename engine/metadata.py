"""What a citation needs to know about a document: title, authors, year and DOI, and for a
legal instrument its parties and date.

Every field is a string or a tuple of strings, so a value read from a PDF, one from a BibTeX
entry and one the user typed are held alike; an empty field is unknown. `extra` keeps the BibTeX
fields that have no field here (journal, volume, pages, publisher...): a .bib imported and
exported again loses none of them.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import asdict, dataclass, field, fields, replace

from engine.errors import PalimpsestError

EDITABLE = ("title", "authors", "year", "doi", "parties", "date", "entry_type", "key")
_YEAR = re.compile(r"\d{4}")
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_KEY = re.compile(r"[^\s,{}()=\"#%'\\~]+")


class MetadataError(PalimpsestError):
    """A metadata value that cannot be stored as given (a year that is not a year...)."""


@dataclass(frozen=True)
class DocumentMetadata:
    title: str = ""
    authors: tuple[str, ...] = ()  # people, each as "Family, Given" or as the source wrote it
    year: str = ""  # four digits
    doi: str = ""  # bare, "10.1234/abc"
    parties: tuple[str, ...] = ()  # the parties to a contract or deed
    date: str = ""  # an instrument's date: YYYY-MM-DD, YYYY-MM or YYYY
    entry_type: str = ""  # the BibTeX entry type: article, book, misc...
    key: str = ""  # the BibTeX citation key
    extra: dict[str, str] = field(default_factory=dict)  # other BibTeX fields, by lower-case name

    @property
    def is_instrument(self) -> bool:
        """A contract, deed or other instrument: it is cited by its title, not its authors."""
        return bool(self.parties)

    @property
    def issued_year(self) -> str:
        return self.year or self.date[:4]

    def filled_from(self, other: DocumentMetadata) -> DocumentMetadata:
        """These fields, each empty one taken from `other`."""
        taken = {f.name: getattr(other, f.name) for f in fields(self) if not getattr(self, f.name)}
        extra = {**other.extra, **self.extra}
        return replace(self, **{**taken, "extra": extra})

    def to_json(self) -> dict:
        data = asdict(self)
        data["authors"], data["parties"] = list(self.authors), list(self.parties)
        return data

    @classmethod
    def from_json(cls, data: dict) -> DocumentMetadata:
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        for name in ("authors", "parties"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


def edited(
    metadata: DocumentMetadata, **changes: str | list[str] | tuple[str, ...]
) -> DocumentMetadata:
    """`metadata` with the fields in `changes` set (an empty value clears a field), each one
    checked and normalised; raises `MetadataError` naming the field that is wrong."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise MetadataError(f"unknown metadata field(s): {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    for name, value in changes.items():
        if name in ("authors", "parties"):
            values[name] = names(value)
        else:
            values[name] = normalise(name, " ".join(str(value).split()))
    return replace(metadata, **values)


def names(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A list of names: as given, or from one string with one name per line or separated by
    ";" or " and " (the BibTeX separator)."""
    if isinstance(value, str):
        value = re.split(r"\s*(?:\n|;|\s+and\s+)\s*", value)
    return tuple(" ".join(name.split()) for name in value if name.strip())


def normalise(name: str, value: str) -> str:
    """One single-valued field, checked: an empty value is always allowed."""
    if not value:
        return ""
    if name == "year" and not _YEAR.fullmatch(value):
        raise MetadataError(f"year must be four digits, such as 2024 (got {value!r})")
    if name == "date" and not is_date(value):
        raise MetadataError(f"date must be YYYY-MM-DD, YYYY-MM or YYYY (got {value!r})")
    if name == "doi":
        value = _DOI_PREFIX.sub("", value)
        if not _DOI.fullmatch(value):
            raise MetadataError(f"a DOI looks like 10.1234/abc (got {value!r})")
    if name == "key" and not _KEY.fullmatch(value):
        raise MetadataError(f"a citation key has no spaces, commas or braces (got {value!r})")
    if name == "entry_type":
        value = value.lower()
    return value


def is_date(value: str) -> bool:
    """A real calendar date, month or year in ISO form ("2024-02-30" is not)."""
    if not _DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat((value + "-01-01")[:10])
    except ValueError:
        return False
    return True
