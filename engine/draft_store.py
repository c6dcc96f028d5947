"""Drafts on disk: one SQLite file in the library folder, one transaction per save.

A save writes the whole draft (settings, canvases, pins, targets, evidence, step counters and the
RNG state) in a single transaction, so a process killed at any moment leaves the previous step or
the new one, never a mix. Each save also records the blocks' canvases at that step, which the
timeline replays.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.database import connection
from engine.draft import Block, Draft, DraftError, DraftSettings
from engine.draft_reading import BlockText, DraftReading, Provenance, stored_body
from engine.sampler import Canvas

SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    draft_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    step INTEGER NOT NULL,
    done INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    draft_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    canvases TEXT NOT NULL,
    PRIMARY KEY (draft_id, step)
);
"""


# Drafts saved before sub-blocks were recorded decoded the whole canvas at once.
LEGACY_SETTINGS = {"sub_block": 0}


@dataclass(frozen=True)
class DraftSummary:
    draft_id: str
    title: str
    step: int
    done: bool
    created: float
    updated: float


def canvas_to_json(canvas: Canvas) -> dict:
    return {
        "tokens": canvas.tokens.tolist(),
        "state": canvas.state.tolist(),
        "commit_step": canvas.commit_step.tolist(),
        "confidence": canvas.confidence.tolist(),
        "mask_id": canvas.mask_id,
        "end_ids": list(canvas.end_ids),
    }


def canvas_from_json(data: dict) -> Canvas:
    return Canvas(
        tokens=torch.tensor(data["tokens"], dtype=torch.long),
        state=torch.tensor(data["state"], dtype=torch.int8),
        commit_step=torch.tensor(data["commit_step"], dtype=torch.long),
        confidence=torch.tensor(data["confidence"], dtype=torch.float32),
        mask_id=data["mask_id"],
        end_ids=tuple(data.get("end_ids", ())),
    )


def draft_to_json(draft: Draft, decoded: list[BlockText]) -> dict:
    return {
        "draft_id": draft.draft_id,
        "title": draft.title,
        "instruction": draft.instruction,
        "settings": asdict(draft.settings),
        "seed": draft.seed,
        "step": draft.step,
        "rng_state": draft.rng_state.hex() if draft.rng_state is not None else None,
        "created": draft.created,
        "updated": draft.updated,
        "blocks": [
            {
                "heading": b.heading,
                "canvas": canvas_to_json(b.canvas),
                "decoded": text.to_json(),
                **Provenance.of(b).to_json(),
                "prompt": b.prompt,
                "step": b.step,
                "steps_total": b.steps_total,
                "window_start": b.window_start,
                "window_step": b.window_step,
                "cache_epoch": b.cache_epoch,
            }
            for b, text in zip(draft.blocks, decoded, strict=True)
        ],
    }


def draft_from_json(data: dict) -> Draft:
    blocks = []
    for b in data["blocks"]:
        provenance = Provenance.from_json(b)
        blocks.append(
            Block(
                heading=b["heading"],
                canvas=canvas_from_json(b["canvas"]),
                targets=provenance.targets,
                evidence=provenance.evidence,
                prompt=b.get("prompt"),
                step=b["step"],
                steps_total=b["steps_total"],
                window_start=b.get("window_start", -1),
                window_step=b.get("window_step", 0),
                cache_epoch=b.get("cache_epoch", -1),  # older drafts: start an epoch
                read=provenance.read,
                citations=provenance.citations,
                redline=provenance.redline,
            )
        )
    return Draft(
        instruction=data["instruction"],
        blocks=blocks,
        settings=DraftSettings(**{**LEGACY_SETTINGS, **data["settings"]}),
        seed=data["seed"],
        draft_id=data["draft_id"],
        title=data["title"],
        step=data["step"],
        rng_state=bytes.fromhex(data["rng_state"]) if data["rng_state"] else None,
        created=data["created"],
        updated=data["updated"],
    )


class DraftStore:
    def __init__(self, path: Path, timeout_s: float = 30.0):
        self.path = path
        self.timeout_s = timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path, self.timeout_s, synchronous="FULL")  # every step durable

    def save(self, draft: Draft, decoded: list[BlockText]) -> None:
        """Store the draft with its blocks' decoded texts (`Drafter.decode`), which `show` and
        `export` read without the model."""
        draft.updated = time.time()
        body = json.dumps(draft_to_json(draft, decoded))
        canvases = json.dumps([canvas_to_json(b.canvas) for b in draft.blocks])
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO drafts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    draft.draft_id,
                    draft.title,
                    draft.step,
                    int(draft.done),
                    draft.created,
                    draft.updated,
                    body,
                ),
            )
            db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)",
                (draft.draft_id, draft.step, canvases),
            )

    def load(self, draft_id: str) -> Draft:
        return draft_from_json(stored_body(self.path, draft_id, self.timeout_s))

    def reading(self, draft_id: str) -> DraftReading | None:
        """What the stored draft says, without its canvases; None for a draft saved before
        decoded texts were stored."""
        return DraftReading.from_body(stored_body(self.path, draft_id, self.timeout_s))

    def drafts(self) -> list[DraftSummary]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT draft_id, title, step, done, created, updated FROM drafts"
                " ORDER BY updated DESC"
            ).fetchall()
        return [DraftSummary(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def snapshot(self, draft_id: str, step: int) -> list[Canvas]:
        """The blocks' canvases as they were after `step` (the latest save at or before it)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT canvases FROM snapshots WHERE draft_id = ? AND step <= ?"
                " ORDER BY step DESC LIMIT 1",
                (draft_id, step),
            ).fetchone()
        if row is None:
            raise DraftError(f"draft {draft_id!r} has no step {step}")
        return [canvas_from_json(c) for c in json.loads(row[0])]

    def delete(self, draft_id: str) -> bool:
        with self._connect() as db:
            deleted = db.execute("DELETE FROM drafts WHERE draft_id = ?", (draft_id,)).rowcount
            db.execute("DELETE FROM snapshots WHERE draft_id = ?", (draft_id,))
        return bool(deleted)
