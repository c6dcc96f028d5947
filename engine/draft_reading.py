"""What a draft says, readable without its model: each block's decoded text, kept with the draft
at every save, and a stored draft read back from SQLite alone.

Showing or exporting a draft needs its text, pins, citations and sources, never its canvases. But
canvases are torch tensors and decoding them needs the model's tokenizer, so `palimpsest show`
used to import torch and load the whole model to print text it had already decoded. Every save now
stores each block's `BlockText` (computed by `Drafter.decode`, beside the canvas it was decoded
from, in the same transaction), and `read_stored` turns a stored draft into a `DraftReading`
without importing torch. A draft saved before the texts were stored reads as None: its reader
decodes it the old way.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.database import connection
from engine.errors import DraftError
from engine.provenance import Citations, ReadRound
from engine.search_hit import SearchHit

if TYPE_CHECKING:
    from engine.draft import Block, Draft

DRAFTS_FILE = "drafts.sqlite3"


@dataclass(frozen=True)
class BlockText:
    """One block's text as decoded from its canvas."""

    text: str  # the section's text, masks dropped: what is cited and exported
    shown: str  # as the page shows it while drafting (masks as ▒); equal to `text` once done
    pins: list[tuple[int, int, str]]  # each pinned run: start and end in `shown`, and its text
    done: bool

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "shown": self.shown,
            "pins": [list(pin) for pin in self.pins],
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: dict) -> BlockText:
        pins = [(int(s), int(e), str(t)) for s, e, t in data["pins"]]
        return cls(data["text"], data["shown"], pins, bool(data["done"]))


@dataclass(frozen=True)
class Provenance:
    """What a block was limited to, read and cited, and the base of its pending change: the
    fields a stored block and a block's reading share."""

    targets: list[str]
    evidence: list[SearchHit]
    read: list[ReadRound]
    citations: Citations | None
    redline: str | None

    @classmethod
    def of(cls, block: Block) -> Provenance:
        return cls(block.targets, block.evidence, block.read, block.citations, block.redline)

    def to_json(self) -> dict:
        return {
            "targets": self.targets,
            "evidence": [hit.to_json() for hit in self.evidence],
            "read": [r.to_json() for r in self.read],
            "citations": self.citations.to_json() if self.citations is not None else None,
            "redline": self.redline,
        }

    @classmethod
    def from_json(cls, data: dict) -> Provenance:
        return cls(
            targets=data["targets"],
            evidence=[SearchHit(**hit) for hit in data["evidence"]],
            read=[ReadRound.from_json(r) for r in data.get("read", [])],
            citations=Citations.from_json(data["citations"]) if data.get("citations") else None,
            redline=data.get("redline"),
        )


@dataclass(frozen=True)
class BlockReading:
    heading: str
    decoded: BlockText
    provenance: Provenance
    step: int
    steps_total: int


@dataclass(frozen=True)
class DraftReading:
    draft_id: str
    title: str
    instruction: str
    step: int
    blocks: list[BlockReading]

    @property
    def done(self) -> bool:
        return all(block.decoded.done for block in self.blocks)

    @classmethod
    def of(cls, draft: Draft, decoded: list[BlockText]) -> DraftReading:
        """The reading of a draft in memory, given its blocks' decoded texts."""
        blocks = [
            BlockReading(b.heading, text, Provenance.of(b), b.step, b.steps_total)
            for b, text in zip(draft.blocks, decoded, strict=True)
        ]
        return cls(draft.draft_id, draft.title, draft.instruction, draft.step, blocks)

    @classmethod
    def from_body(cls, body: dict) -> DraftReading | None:
        """The reading of a stored draft's body; None when it was saved without its texts."""
        if any("decoded" not in b for b in body["blocks"]):
            return None
        blocks = [
            BlockReading(
                b["heading"],
                BlockText.from_json(b["decoded"]),
                Provenance.from_json(b),
                b["step"],
                b["steps_total"],
            )
            for b in body["blocks"]
        ]
        return cls(body["draft_id"], body["title"], body["instruction"], body["step"], blocks)


def stored_body(path: Path, draft_id: str, timeout_s: float = 30.0) -> dict:
    """The stored JSON body of a draft (DraftStore's format)."""
    try:
        with connection(path, timeout_s) as db:
            row = db.execute("SELECT body FROM drafts WHERE draft_id = ?", (draft_id,)).fetchone()
    except sqlite3.OperationalError:  # no drafts table (a library that never drafted)
        row = None
    if row is None:
        raise DraftError(f"no draft {draft_id!r} in this library")
    return json.loads(row[0])


def read_stored(library_dir: Path, draft_id: str) -> DraftReading | None:
    """A stored draft read without its model; None when it was saved without its texts."""
    path = library_dir / DRAFTS_FILE
    if not path.is_file():
        raise DraftError(f"no draft {draft_id!r} in this library")
    return DraftReading.from_body(stored_body(path, draft_id))
