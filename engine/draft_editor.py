"""Reading and editing a stored draft's text: its tokenizer, its library and its store, no model.

Showing a draft, pinning, editing, accepting or rejecting a change, and citing a section all work
on tokens and text; only a run needs the denoiser's weights (`engine.drafting.Drafter`, which is a
`DraftEditor` with a model). So a draft of an 8B model opens and takes an edit in seconds, from
the CLI or after the app restarts, without loading gigabytes first (`Workspace.open`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.draft import Draft, block_text, pinned_spans
from engine.draft_reading import BlockText
from engine.draft_store import DraftStore
from engine.provenance import current_citations

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from engine.library import Library


@dataclass(frozen=True)
class BlockView:
    heading: str
    text: str  # masks shown as MASK_GLYPH
    step: int
    steps_total: int
    masked: int
    done: bool


class DraftEditor:
    """The text of drafts made with one tokenizer, over one library, saved to a `DraftStore`."""

    def __init__(self, library: Library, tokenizer: PreTrainedTokenizerBase, store: DraftStore):
        self.library = library
        self.tokenizer = tokenizer
        self.store = store

    def view(self, draft: Draft, index: int) -> BlockView:
        block = draft.blocks[index]
        return BlockView(
            heading=block.heading,
            text=block_text(self.tokenizer, block, show_masks=True),
            step=block.step,
            steps_total=block.steps_total,
            masked=block.canvas.n_open,
            done=block.done,
        )

    def text(self, draft: Draft, index: int) -> str:
        return block_text(self.tokenizer, draft.blocks[index])

    def decode(self, draft: Draft) -> list[BlockText]:
        """Each block's text (as cited, and as shown while drafting) and pins."""
        return [
            BlockText(
                text=block_text(self.tokenizer, block),
                shown=block_text(self.tokenizer, block, show_masks=not block.done),
                pins=pinned_spans(self.tokenizer, block),
                done=block.done,
            )
            for block in draft.blocks
        ]

    def save(self, draft: Draft) -> None:
        """Persist the draft with its decoded texts, so it can be shown without the model."""
        self.store.save(draft, self.decode(draft))

    def cite(self, draft: Draft, index: int) -> None:
        """Store what supports the block's current text (sentence by sentence), unless what is
        stored was computed for this very text: attribution runs once per text, never to draw."""
        block = draft.blocks[index]
        text = self.text(draft, index)
        block.citations = current_citations(self.library, text, block.targets, block.citations)
