"""`palimpsest ingest` on a terminal: the progress line on stderr, and Ctrl+C as a cancel.

On a terminal the progress is one line rewritten in place; piped or logged, it is a line every
`PERIOD_S` seconds and a last one at the end, so a log keeps a readable record. Outcome lines go
to stdout as before; on a terminal the progress line is wiped before each is printed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from engine.ingest_progress import IngestProgress

PERIOD_S = 10.0  # between progress lines when stderr is not a terminal
REDRAW_S = 0.2  # at most this often on a terminal

CANCELLING = (
    "cancelling: the document being written is undone and no more files are read "
    "(Ctrl+C again stops at once; the next start undoes what is left)"
)


class StderrProgress:
    """A progress callback for `engine.ingest_pipeline.ingest_files` that prints to `stream`."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.period = REDRAW_S if self.live else PERIOD_S
        self.shown_at = float("-inf")
        self.last: IngestProgress | None = None
        self.drawn = False

    def __call__(self, progress: IngestProgress) -> None:
        self.last = progress
        now = time.monotonic()
        if now - self.shown_at >= self.period:
            self.shown_at = now
            self._show(progress)

    def clear(self) -> None:
        """Wipe the live line (before something else is printed on the terminal)."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False

    def finish(self) -> None:
        """The last figures, left on their own line."""
        if self.last is not None:
            self._show(self.last)
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
        self.stream.flush()

    def _show(self, progress: IngestProgress) -> None:
        if self.live:
            self.stream.write("\r\033[K" + progress.line())
            self.drawn = True
        else:
            self.stream.write(progress.line() + "\n")
        self.stream.flush()


@contextlib.contextmanager
def cancel_on_interrupt(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl+C sets `cancel` (the ingest stops cleanly at its next batch); a second
    one interrupts at once, as Ctrl+C always does."""

    def interrupted(signum, frame) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\n" + CANCELLING, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
