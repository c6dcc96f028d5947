"""How far an ingest of many files has got: files and pages done, pages/s and time left.

Pages are counted upfront with PDFium (cheap: no text is read), so the totals are known before the
first file is parsed. A file's pages count as done when it is finished (added, duplicate, failed),
and pro rata with its chunks stored while it is being written, so the figures move smoothly and
never go back (until a cancel undoes the file being written); when every file is finished they
equal the totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IngestProgress:
    files_done: int
    files_total: int
    pages_done: int
    pages_total: int
    elapsed_s: float
    current: str = ""  # the file being stored, if any

    @property
    def pages_per_s(self) -> float:
        return self.pages_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """At the average rate so far; None until a page is done."""
        if self.pages_done <= 0 or self.elapsed_s <= 0:
            return None
        return max(self.pages_total - self.pages_done, 0) / self.pages_per_s

    @property
    def fraction(self) -> float:
        if self.pages_total > 0:
            return min(self.pages_done / self.pages_total, 1.0)
        return self.files_done / self.files_total if self.files_total else 1.0

    def line(self) -> str:
        """One line: "3/40 files · 120/1,500 pages · 4.1 pages/s · 5 min 36 s left"."""
        parts = [
            f"{self.files_done}/{self.files_total} files",
            f"{self.pages_done:,}/{self.pages_total:,} pages",
            f"{self.pages_per_s:.1f} pages/s",
        ]
        left = self.seconds_left
        if left is not None and self.files_done < self.files_total:
            parts.append(f"{duration(left)} left")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    """A short human duration: "42 s", "5 min 36 s", "2 h 05 min"."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class ProgressMeter:
    """Keeps the counts of one ingest run and reports an `IngestProgress` after each change."""

    pages: list[int]  # each file's page count, as counted upfront (0 when unknown)
    report: Callable[[IngestProgress], None]
    started: float = field(default_factory=time.monotonic)
    files_done: int = 0
    pages_finished: int = 0
    flight: int | None = None  # the file being written
    in_flight: float = 0.0  # its pages, pro rata with its stored chunks
    current: str = ""

    def __post_init__(self) -> None:
        self.pages_total = sum(self.pages)

    def start(self) -> None:
        self.started = time.monotonic()
        self._emit()

    def writing(self, index: int, name: str, stored: int, chunks: int) -> None:
        """File `index` has `stored` of its `chunks` chunks in the stores."""
        self.flight, self.current = index, name
        self.in_flight = self.pages[index] * stored / max(chunks, 1)
        self._emit()

    def finished(self, index: int) -> None:
        self.files_done += 1
        self.pages_finished += self.pages[index]
        if index == self.flight:
            self.flight, self.in_flight, self.current = None, 0.0, ""
        self._emit()

    def dropped(self, index: int) -> None:
        """File `index` was cancelled: whatever of it was written is undone."""
        if index == self.flight:
            self.flight, self.in_flight, self.current = None, 0.0, ""
            self._emit()

    def snapshot(self) -> IngestProgress:
        done = min(int(self.pages_finished + self.in_flight), self.pages_total)
        return IngestProgress(
            self.files_done,
            len(self.pages),
            done,
            self.pages_total,
            time.monotonic() - self.started,
            self.current,
        )

    def _emit(self) -> None:
        self.report(self.snapshot())
