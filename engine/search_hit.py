"""A search result: a passage of a page, where it lies and how it ranked.

In its own module so that what only reads stored drafts (show, export) can use it without
importing the library's stores (Chroma and the rest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    doc_id: str
    filename: str
    page_index: int
    page_label: str
    char_start: int
    char_end: int
    score: float
    text: str
    # Set when the page's text was recognised by OCR; drafts saved before lack both fields.
    ocr_confidence: float | None = None
    low_confidence: bool = False  # under its engine's bound: the passage may be misread

    def to_json(self) -> dict:
        return asdict(self)

    def page_note(self) -> str:
        """Where the passage is, as shown beside it: "p. 3", "p. 3 · OCR" for a recognised
        page, "p. 3 · OCR, low confidence 0.82" for one that may be misread."""
        note = f"p. {self.page_label}"
        if self.low_confidence:
            return f"{note} · OCR, low confidence {self.ocr_confidence:.2f}"
        return f"{note} · OCR" if self.ocr_confidence is not None else note
