"""One library folder with everything that works on it: documents, drafts and models.

The CLI and the UI both go through a `Workspace`, so they are two faces of the same engine API.
Models come from a `Denoisers` cache that several workspaces (one per user) can share.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from engine.block_ops import ALREADY_RUNNING, RUNNING, DraftLeases, check_strength, unpin_span
from engine.config import Settings
from engine.draft import (
    Draft,
    DraftError,
    edit_text,
    keep_change_base,
    pin_selection,
)
from engine.draft_editor import DraftEditor
from engine.draft_output import draft_json, export_reading
from engine.draft_reading import DRAFTS_FILE, DraftReading
from engine.draft_store import DraftStore
from engine.drafting import Drafter, block_of
from engine.embeddings import Embedder
from engine.library import Library
from engine.models import Denoisers

E = TypeVar("E", bound=DraftEditor)  # what a block operation works through


class Workspace:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        denoisers: Denoisers | None = None,
    ):
        self.settings = settings
        self.library = Library(settings, embedder=embedder)
        self.drafts = DraftStore(settings.library_dir / DRAFTS_FILE)
        self.denoisers = denoisers or Denoisers.for_settings(settings)
        self.leases = DraftLeases(settings.library_dir / "leases")

    def drafter(self, model: str, int8: bool = False) -> Drafter:
        return Drafter(self.library, self.denoisers.get(model, int8), self.drafts)

    def editor(self, model: str) -> DraftEditor:
        """What reads and edits the drafts of `model`: its tokenizer, not its weights."""
        return DraftEditor(self.library, self.denoisers.tokenizer(model), self.drafts)

    def open(self, draft_id: str) -> tuple[Draft, DraftEditor]:
        """A stored draft, to show or edit; its model is not loaded."""
        draft = self.drafts.load(draft_id)
        return draft, self.editor(draft.settings.model)

    def open_to_run(self, draft_id: str) -> tuple[Draft, Drafter]:
        """A stored draft with its model loaded, to step or resume."""
        draft = self.drafts.load(draft_id)
        return draft, self.drafter(draft.settings.model, draft.settings.int8)

    # -- operations on one block --------------------------------------------------------------
    # Each is one transaction on the stored draft: hold its lease (refused while it runs), load
    # it, change one block through the engine's own operation, save it. Blocks are numbered from
    # 0, as in `Draft.blocks`; messages count from 1, as the UI and the CLI show them. Pinning,
    # editing and reviewing changes need the tokenizer only; re-running loads the model, since
    # the caller redrafts the block next.

    def running(self, draft_id: str) -> AbstractContextManager[None]:
        """Claim a draft for a run (`Drafter.run`): until it ends, every block operation on the
        draft, from this process or another, is refused instead of being undone by a step."""
        return self.leases.hold(draft_id, ALREADY_RUNNING)

    def pin(self, draft_id: str, block: int, start: int, end: int) -> tuple[Draft, DraftEditor]:
        """Pin the whole tokens covering characters [start, end) of the block's text (masks
        shown, as `to_json` gives it)."""
        return self._edit(
            draft_id, block, lambda ed, d: pin_selection(ed.tokenizer, d.blocks[block], start, end)
        )

    def unpin(self, draft_id: str, block: int, start: int, end: int) -> tuple[Draft, DraftEditor]:
        return self._edit(
            draft_id, block, lambda ed, d: unpin_span(ed.tokenizer, d.blocks[block], start, end)
        )

    def edit(
        self, draft_id: str, block: int, text: str, lock: bool = False
    ) -> tuple[Draft, DraftEditor]:
        """Replace the block's text with the user's (pinned passages must survive); with `lock`
        all of it becomes pinned."""

        def change(editor: DraftEditor, draft: Draft) -> None:
            before = editor.text(draft, block)
            edit_text(editor.tokenizer, draft.blocks[block], text, lock)
            if editor.text(draft, block) != before:
                keep_change_base(draft.blocks[block], before)
            editor.cite(draft, block)

        return self._edit(draft_id, block, change)

    def accept(self, draft_id: str, block: int) -> tuple[Draft, DraftEditor]:
        """Accept the block's tracked change: its current text becomes the new base."""

        def change(editor: DraftEditor, draft: Draft) -> None:
            draft.blocks[block].redline = None

        return self._edit(draft_id, block, change)

    def reject(self, draft_id: str, block: int) -> tuple[Draft, DraftEditor]:
        """Reject the block's tracked change: its text before the change comes back (as the
        user's text, so committed; pinned text in it stays pinned)."""

        def change(editor: DraftEditor, draft: Draft) -> None:
            base = draft.blocks[block].redline
            if base is None:
                raise DraftError(f"block {block + 1} has no change to reject")
            edit_text(editor.tokenizer, draft.blocks[block], base)
            draft.blocks[block].redline = None
            editor.cite(draft, block)

        return self._edit(draft_id, block, change)

    def rerun(self, draft_id: str, block: int, strength: float = 1.0) -> tuple[Draft, Drafter]:
        """Re-noise `strength` of the block's unpinned positions and save. The caller redrafts
        it through the run path, `drafter.run(draft, only=[block])` inside `running`, so the UI
        can stream the steps and the CLI print them."""
        check_strength(strength)
        return self._renoise(draft_id, block, lambda dr, d: dr.rerun(d, block, strength))

    def retarget(
        self, draft_id: str, block: int, doc_ids: list[str], strength: float = 1.0
    ) -> tuple[Draft, Drafter]:
        """Limit the block's retrieval to `doc_ids` (none: the whole library) and re-noise it,
        as `rerun` does."""
        check_strength(strength)
        return self._renoise(
            draft_id, block, lambda dr, d: dr.retarget(d, block, list(doc_ids), strength)
        )

    def _edit(
        self, draft_id: str, block: int, change: Callable[[DraftEditor, Draft], None]
    ) -> tuple[Draft, DraftEditor]:
        return self._transaction(draft_id, block, lambda d: self.editor(d.settings.model), change)

    def _renoise(
        self, draft_id: str, block: int, change: Callable[[Drafter, Draft], None]
    ) -> tuple[Draft, Drafter]:
        def drafter(draft: Draft) -> Drafter:
            return self.drafter(draft.settings.model, draft.settings.int8)

        return self._transaction(draft_id, block, drafter, change)

    def _transaction(
        self,
        draft_id: str,
        block: int,
        open_with: Callable[[Draft], E],
        change: Callable[[E, Draft], None],
    ) -> tuple[Draft, E]:
        with self.leases.hold(draft_id, RUNNING):
            draft = self.drafts.load(draft_id)
            block_of(draft, block)  # a wrong number is refused before anything is loaded
            editor = open_with(draft)
            change(editor, draft)
            editor.save(draft)
        return draft, editor

    # -- what a draft says and where it comes from ------------------------------------------

    def reading(self, draft_id: str) -> DraftReading:
        """What the stored draft says: read without its model, or (a draft saved before decoded
        texts were stored) decoded by it."""
        stored = self.drafts.reading(draft_id)
        if stored is not None:
            return stored
        draft, editor = self.open(draft_id)
        return DraftReading.of(draft, editor.decode(draft))

    def to_json(self, editor: DraftEditor, draft: Draft) -> dict:
        """A draft in memory as DESIGN section 3 shows it (`engine.draft_output.block_json`)."""
        return draft_json(self.library, DraftReading.of(draft, editor.decode(draft)))

    def export(self, draft_id: str, fmt: str, path: str | Path, style: str | None = None) -> Path:
        """Write the stored draft as Markdown or DOCX (`engine.draft_output.export_reading`)."""
        return export_reading(self.library, self.reading(draft_id), fmt, path, style)
