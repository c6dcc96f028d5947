"""Which drafts are being denoised right now, and the pause requests for them.

One registry per app (not module-global), shared by every browser session: a run belongs to a
draft, so a Pause pressed in any tab showing that draft stops it after the step in flight, and an
edit to a draft that is running is refused instead of being overwritten by the next step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from engine.draft import DraftError


class RunRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pause: dict[str, threading.Event] = {}

    @contextmanager
    def running(self, draft_id: str) -> Iterator[threading.Event]:
        """Claim a draft for one run; yields the event that asks it to pause."""
        with self._lock:
            if draft_id in self._pause:
                raise DraftError("this draft is already running; pause it first")
            pause = self._pause[draft_id] = threading.Event()
        try:
            yield pause
        finally:
            with self._lock:
                self._pause.pop(draft_id, None)

    def is_running(self, draft_id: str) -> bool:
        with self._lock:
            return draft_id in self._pause

    def pause(self, draft_id: str) -> bool:
        with self._lock:
            event = self._pause.get(draft_id)
        if event is not None:
            event.set()
        return event is not None
