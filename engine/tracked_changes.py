"""A section's pending change as Word revisions: deleted words as `w:del`, new ones as `w:ins`.

The change is a word-level diff of the text before it (`Block.redline`) against the current
text, the same comparison the document view shows. Each word carries the whitespace before it,
so accepting or rejecting every revision in Word leaves exactly one of the two texts with its
spacing. Deleted words are placed before the first current word that follows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from difflib import SequenceMatcher

from docx.oxml import OxmlElement
from docx.oxml.ns import qn

AUTHOR = "Palimpsest"
_WORD = re.compile(r"\s*\S+|\s+$")


@dataclass(frozen=True)
class WordChange:
    """For each word of the current text, in order: whether it is new, and the words of the old
    text deleted just before it; `trailing`: those deleted after the last word."""

    inserted: list[bool]
    deleted_before: list[str]
    trailing: str


def word_change(before: str, after: str) -> WordChange:
    old = before.split()
    new = after.split()
    inserted = [False] * len(new)
    deleted = [""] * (len(new) + 1)
    for op, a0, a1, b0, b1 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            deleted[b0] += " " + " ".join(old[a0:a1])
        if op in ("replace", "insert"):
            inserted[b0:b1] = [True] * (b1 - b0)
    return WordChange(inserted, deleted[:-1], deleted[-1])


class Revisions:
    """Writes runs of one document's text as tracked insertions and deletions, numbering the
    revisions (Word needs each `w:id` unique) and stamping them with one author and date."""

    def __init__(self, first_id: int = 1, when: datetime | None = None):
        self.next_id = first_id
        self.date = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _mark(self, tag: str, run_text: str, text_tag: str):
        wrapper = OxmlElement(
            tag, {qn("w:id"): str(self.next_id), qn("w:author"): AUTHOR, qn("w:date"): self.date}
        )
        self.next_id += 1
        run = OxmlElement("w:r")
        text = OxmlElement(text_tag, {qn("xml:space"): "preserve"})
        text.text = run_text
        run.append(text)
        wrapper.append(run)
        return wrapper

    def deleted(self, text: str):
        return self._mark("w:del", text, "w:delText")

    def inserted(self, text: str):
        return self._mark("w:ins", text, "w:t")


class ChangedText:
    """Walks the current text run by run (as the export writes it, whitespace collapsed) and
    says which parts are unchanged, new, or preceded by deletions."""

    def __init__(self, change: WordChange):
        self.change = change
        self.word = 0  # index of the next word of the current text

    def pieces(self, run: str) -> list[tuple[str, str]]:
        """(kind, text) for `run`: kind "same", "new" or "deleted", in reading order."""
        out: list[tuple[str, str]] = []
        for match in _WORD.finditer(run):
            token = match.group()
            if not token.strip():  # trailing spaces of the run
                out.append(("same", token))
                continue
            if self.word < len(self.change.inserted):
                if self.change.deleted_before[self.word]:
                    out.append(("deleted", self.change.deleted_before[self.word]))
                kind = "new" if self.change.inserted[self.word] else "same"
            else:
                kind = "same"
            out.append((kind, token))
            self.word += 1
        return out

    def rest(self) -> str:
        """What was deleted after the last word of the current text."""
        return self.change.trailing
