"""What became of one file given to an ingest: added, duplicate, failed (with why) or cancelled."""

from __future__ import annotations

from dataclasses import dataclass

CANCELLED_MESSAGE = "not added: the ingest was cancelled"


@dataclass(frozen=True)
class IngestOutcome:
    filename: str
    status: str  # "added", "duplicate", "failed" or "cancelled"
    message: str
    doc_id: str | None = None
    pages: int = 0
    chunks: int = 0

    @property
    def readable(self) -> bool:
        """Whether the file is known to be readable: in the library, now or before."""
        return self.status in ("added", "duplicate")

    def line(self) -> str:
        return f"{self.status}: {self.filename}: {self.message}"

    @classmethod
    def cancelled(cls, filename: str, doc_id: str | None = None) -> IngestOutcome:
        return cls(filename, "cancelled", CANCELLED_MESSAGE, doc_id)
