"""Loading, in the background, the models a first request would otherwise wait for.

The web app serves its first page before any model is loaded; a `Warmup` then loads the
embedding model and the default drafting model one after the other on a daemon thread and says
where it is (the page's status line, the server's `/ready`). A request that needs a model sooner
just waits for it: each model's loader holds its own lock, so nothing is loaded twice. A model
that cannot load is reported and skipped; the request that needs it gets the loader's own error.
A step may also decline (`Deferred`: a model that would have to be downloaded), which is noted,
not reported as a failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import first_line


class Deferred(Exception):
    """Raised by a step that leaves its model for first use; its message is shown as a note."""


@dataclass(frozen=True)
class WarmupState:
    ready: bool  # every step has ended, loaded, deferred or failed
    message: str
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the deferred steps' messages

    def to_json(self) -> dict:
        return {
            "ready": self.ready,
            "message": self.message,
            "failures": list(self.failures),
            "notes": list(self.notes),
        }


class Warmup:
    """Runs `steps` ((what is loaded, how) pairs) in order on one daemon thread."""

    def __init__(self, steps: Sequence[tuple[str, Callable[[], object]]]):
        self._steps = list(steps)
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None  # what is loading, since when
        self._failures: list[str] = []
        self._notes: list[str] = []
        self._done = threading.Event()
        self._loaded: list[tuple[str, float]] = []

    def start(self) -> Warmup:
        threading.Thread(target=self._run, name="palimpsest-warmup", daemon=True).start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            for label, load in self._steps:
                started = time.monotonic()
                with self._lock:
                    self._current = (label, started)
                try:
                    load()
                except Deferred as deferral:
                    with self._lock:
                        self._notes.append(str(deferral))
                except Exception as error:  # reported on the page; the app keeps serving
                    with self._lock:
                        self._failures.append(f"{label} could not be loaded: {first_line(error)}")
                else:
                    with self._lock:
                        self._loaded.append((label, time.monotonic() - started))
        finally:
            with self._lock:
                self._current = None
            self._done.set()

    def state(self) -> WarmupState:
        with self._lock:
            failures, notes = tuple(self._failures), tuple(self._notes)
            if self._current is not None:
                label, since = self._current
                seconds = time.monotonic() - since
                return WarmupState(False, f"Loading {label}… ({seconds:.0f} s)", failures, notes)
            if not self._done.is_set():
                return WarmupState(False, "Loading the models…", failures, notes)
            loaded = ", ".join(f"{label} ({seconds:.1f} s)" for label, seconds in self._loaded)
            message = f"Ready: loaded {loaded}." if loaded else "Ready."
            return WarmupState(True, message, failures, notes)
