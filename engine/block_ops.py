"""What keeps a block operation off a draft that is running, and the checks the operations share.

A draft can be reached from two browser tabs and from `palimpsest` processes at once. A block
operation (pin, unpin, edit, re-run, retarget) loads the draft, changes one block and saves it; a
run saves the whole draft after every step. An operation that landed while a run held the draft
in memory would be undone, silently, by the run's next save. So both hold the draft's lease: an
exclusive `flock` on one file per draft in the library folder. It excludes other threads as well
as other processes (each holder opens the file itself), and the kernel drops it when its holder
dies, so a process killed mid-run never leaves a draft marked as running.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from engine.draft import Block, DraftError, positions_in, text_and_spans, unpin_selection

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RUNNING = "the draft is running: pause it before changing it"
ALREADY_RUNNING = "this draft is already running; pause it first"
_DRAFT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # what `Draft` ids look like: safe as a file name


class DraftLeases:
    """One lock file per draft under `folder`; holding its lock is holding the draft."""

    def __init__(self, folder: Path):
        self.folder = folder

    @contextmanager
    def hold(self, draft_id: str, refusal: str) -> Iterator[None]:
        """Hold the draft's lease for the `with` body, or raise `DraftError(refusal)` at once if
        someone else holds it. Never waits: a run can hold a draft for minutes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._path(draft_id).open("a") as handle:  # closing it releases the lock
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DraftError(refusal) from None
            yield

    def _path(self, draft_id: str) -> Path:
        if not _DRAFT_ID.fullmatch(draft_id):  # an id from a command line never names a path
            raise DraftError(f"no draft {draft_id!r} in this library")
        return self.folder / f"{draft_id}.lock"


def check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise DraftError(f"the re-noise strength must be between 0 and 1, not {strength:g}")


def unpin_span(tokenizer: PreTrainedTokenizerBase, block: Block, start: int, end: int) -> None:
    """Unpin the tokens covering characters [start, end) of the block's text (masks shown),
    refusing a selection that is outside the text or holds nothing pinned, as pinning refuses
    one that holds nothing written: a script learns that its offsets were wrong."""
    text, spans = text_and_spans(tokenizer, block.canvas)
    if not 0 <= start < end <= len(text):
        raise DraftError(f"the selection {start}-{end} is outside the block's text")
    if not any(block.canvas.pinned[p] for p in positions_in(spans, start, end)):
        raise DraftError(f"nothing is pinned in the selection {start}-{end}")
    unpin_selection(tokenizer, block, start, end)
