"""One library folder with everything that works on it: documents, drafts and models.

The CLI and the UI both go through a `Workspace`, so they are two faces of the same engine API.
Models come from a `Denoisers` cache that several workspaces (one per user) can share.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from engine.attribution import SentenceSupport, Support, attribute
from engine.block_ops import ALREADY_RUNNING, RUNNING, DraftLeases, check_strength, unpin_span
from engine.config import Settings
from engine.conflicts import find_conflicts
from engine.draft import (
    Draft,
    DraftError,
    block_text,
    edit_text,
    keep_change_base,
    pin_selection,
    pinned_spans,
)
from engine.draft_store import DraftStore
from engine.drafting import Drafter, block_of
from engine.embeddings import Embedder
from engine.export import Citation, CitedSentence, ExportSection, export_draft
from engine.library import Library
from engine.models import Denoisers
from engine.styled_export import style_citations


class Workspace:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        denoisers: Denoisers | None = None,
    ):
        self.settings = settings
        self.library = Library(settings, embedder=embedder)
        self.drafts = DraftStore(settings.library_dir / "drafts.sqlite3")
        self.denoisers = denoisers or Denoisers.for_settings(settings)
        self.leases = DraftLeases(settings.library_dir / "leases")

    def drafter(self, model: str, int8: bool = False) -> Drafter:
        return Drafter(self.library, self.denoisers.get(model, int8), self.drafts)

    def open(self, draft_id: str) -> tuple[Draft, Drafter]:
        draft = self.drafts.load(draft_id)
        return draft, self.drafter(draft.settings.model, draft.settings.int8)

    # -- operations on one block --------------------------------------------------------------
    # Each is one transaction on the stored draft: hold its lease (refused while it runs), load
    # it, change one block through the engine's own operation, save it. Blocks are numbered from
    # 0, as in `Draft.blocks`; messages count from 1, as the UI and the CLI show them.

    def running(self, draft_id: str) -> AbstractContextManager[None]:
        """Claim a draft for a run (`Drafter.run`): until it ends, every block operation on the
        draft, from this process or another, is refused instead of being undone by a step."""
        return self.leases.hold(draft_id, ALREADY_RUNNING)

    def pin(self, draft_id: str, block: int, start: int, end: int) -> tuple[Draft, Drafter]:
        """Pin the whole tokens covering characters [start, end) of the block's text (masks
        shown, as `to_json` gives it)."""
        return self._change(
            draft_id, block, lambda dr, d: pin_selection(dr.tokenizer, d.blocks[block], start, end)
        )

    def unpin(self, draft_id: str, block: int, start: int, end: int) -> tuple[Draft, Drafter]:
        return self._change(
            draft_id, block, lambda dr, d: unpin_span(dr.tokenizer, d.blocks[block], start, end)
        )

    def edit(
        self, draft_id: str, block: int, text: str, lock: bool = False
    ) -> tuple[Draft, Drafter]:
        """Replace the block's text with the user's (pinned passages must survive); with `lock`
        all of it becomes pinned."""

        def change(drafter: Drafter, draft: Draft) -> None:
            before = drafter.text(draft, block)
            edit_text(drafter.tokenizer, draft.blocks[block], text, lock)
            if drafter.text(draft, block) != before:
                keep_change_base(draft.blocks[block], before)
            drafter.cite(draft, block)

        return self._change(draft_id, block, change)

    def accept(self, draft_id: str, block: int) -> tuple[Draft, Drafter]:
        """Accept the block's tracked change: its current text becomes the new base."""

        def change(drafter: Drafter, draft: Draft) -> None:
            draft.blocks[block].redline = None

        return self._change(draft_id, block, change)

    def reject(self, draft_id: str, block: int) -> tuple[Draft, Drafter]:
        """Reject the block's tracked change: its text before the change comes back (as the
        user's text, so committed; pinned text in it stays pinned)."""

        def change(drafter: Drafter, draft: Draft) -> None:
            base = draft.blocks[block].redline
            if base is None:
                raise DraftError(f"block {block + 1} has no change to reject")
            edit_text(drafter.tokenizer, draft.blocks[block], base)
            draft.blocks[block].redline = None
            drafter.cite(draft, block)

        return self._change(draft_id, block, change)

    def rerun(self, draft_id: str, block: int, strength: float = 1.0) -> tuple[Draft, Drafter]:
        """Re-noise `strength` of the block's unpinned positions and save. The caller redrafts
        it through the run path, `drafter.run(draft, only=[block])` inside `running`, so the UI
        can stream the steps and the CLI print them."""
        check_strength(strength)
        return self._change(draft_id, block, lambda dr, d: dr.rerun(d, block, strength))

    def retarget(
        self, draft_id: str, block: int, doc_ids: list[str], strength: float = 1.0
    ) -> tuple[Draft, Drafter]:
        """Limit the block's retrieval to `doc_ids` (none: the whole library) and re-noise it,
        as `rerun` does."""
        check_strength(strength)
        return self._change(
            draft_id, block, lambda dr, d: dr.retarget(d, block, list(doc_ids), strength)
        )

    def _change(
        self, draft_id: str, block: int, change: Callable[[Drafter, Draft], None]
    ) -> tuple[Draft, Drafter]:
        with self.leases.hold(draft_id, RUNNING):
            draft = self.drafts.load(draft_id)
            block_of(draft, block)  # a wrong number is refused before any model is loaded
            drafter = self.drafter(draft.settings.model, draft.settings.int8)
            change(drafter, draft)
            self.drafts.save(draft)
        return draft, drafter

    # -- what a draft says and where it comes from ------------------------------------------

    def sources(self, drafter: Drafter, draft: Draft, index: int, k: int = 3) -> list[Support]:
        """The passages that support a block's current text, within its target documents."""
        text = drafter.text(draft, index)
        return attribute(self.library, text, k=k, doc_ids=draft.blocks[index].targets or None)

    def citations(self, drafter: Drafter, draft: Draft, index: int) -> list[SentenceSupport]:
        """The sentence-level citations of a block's current text: those stored with the draft
        when they describe this text, else computed (a draft saved before they were stored;
        the loaded copy keeps them, the stored draft is not changed)."""
        drafter.cite(draft, index)
        return draft.blocks[index].citations.sentences

    def to_json(self, drafter: Drafter, draft: Draft) -> dict:
        """The draft as DESIGN section 3 shows it: blocks with text, step, pins and sources;
        for a finished block, each sentence with its citations and where those disagree, what
        the block read round by round, and the base of its pending tracked change."""
        blocks = []
        for index, block in enumerate(draft.blocks):
            done_text = drafter.text(draft, index) if block.done else ""
            cited = done_text.strip() != ""
            sources = (
                [s.to_json() for s in self.sources(drafter, draft, index)]
                if cited
                else [hit.to_json() for hit in block.evidence]
            )
            sentences = self.citations(drafter, draft, index) if cited else []
            conflicts = find_conflicts([c.hit for s in sentences for c in s.citations])
            blocks.append(
                {
                    "heading": block.heading,
                    "text": block_text(drafter.tokenizer, block, show_masks=not block.done),
                    "step": block.step,
                    "steps_total": block.steps_total,
                    "done": block.done,
                    "targets": block.targets,
                    "pins": [
                        {"start": s, "end": e, "text": t}
                        for s, e, t in pinned_spans(drafter.tokenizer, block)
                    ],
                    "sources": sources,
                    "sentences": [s.to_json() for s in sentences],
                    "conflicts": [c.to_json() for c in conflicts],
                    "read": [r.to_json() for r in block.read],
                    "redline": block.redline,
                }
            )
        return {
            "draft_id": draft.draft_id,
            "title": draft.title,
            "step": draft.step,
            "done": draft.done,
            "blocks": blocks,
        }

    def export(self, draft_id: str, fmt: str, path: str | Path, style: str | None = None) -> Path:
        """Write the draft with a footnote per citation of each supported sentence, and the
        unsupported sentences marked; citations in `style` with a bibliography (None: file
        name and page label). A section's pending tracked change goes into a DOCX as Word
        revisions."""
        if fmt not in ("md", "docx"):
            raise DraftError(f"unknown export format {fmt!r}: choose md or docx")
        draft, drafter = self.open(draft_id)
        texts = [drafter.text(draft, index) for index in range(len(draft.blocks))]
        cited = [self.citations(drafter, draft, index) for index in range(len(draft.blocks))]
        styled, bibliography = style_citations(self.library, style, cited) if style else ([], None)
        sections = []
        for index, (block, text, sentences) in enumerate(
            zip(draft.blocks, texts, cited, strict=True)
        ):
            cites = styled[index] if style else [[""] * len(s.citations) for s in sentences]
            notes = [
                CitedSentence(s.start, s.end, _evidence_quotes(s, sentence_cites))
                for s, sentence_cites in zip(sentences, cites, strict=True)
            ]
            base = block.redline if block.done else None
            sections.append(ExportSection(block.heading, text, sentences=notes, previous=base))
        return export_draft(path, fmt, draft.title, sections, draft.instruction, bibliography)


def _evidence_quotes(sentence: SentenceSupport, cites: list[str]) -> list[Citation]:
    """The sentence's citations as footnotes, each quoting the passage's matching sentence
    (`cites`: each as a citation style prints it, or empty)."""
    return [
        Citation(c.hit.filename, c.hit.page_label, c.quote(), cite)
        for c, cite in zip(sentence.citations, cites, strict=True)
    ]
