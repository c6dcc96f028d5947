"""Search hits say when their page was read by OCR, and when with low confidence (issue 12).

One small document is ingested once: a text page (the NDA's second page) then a blurred scan
of the top of its first page, which RapidOCR reads with a confidence well under its bound
(about 0.89, tests/test_ocr.py). Recognising that strip takes a second or two.
"""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_DIR
from helpers import write
from scan_fixtures import blurred, image_pdf, joined_pdf, render_page, top_part

import engine.cli
from engine.config import Settings
from engine.draft import Block, Draft, DraftSettings
from engine.draft_reading import BlockText
from engine.draft_store import draft_from_json, draft_to_json
from engine.library import Library, SearchHit
from engine.ocr import LOW_CONFIDENCE
from engine.sampler import Canvas

NDA = SAMPLE_DIR / "nda.pdf"
DPI = 300


@pytest.fixture(scope="module")
def library(tmp_path_factory, embedder) -> Library:
    """The text page and the blurred scan, ingested into a library of their own."""
    scan = image_pdf([blurred(top_part(render_page(NDA, 0, DPI), DPI, 120), radius=5)], DPI)
    folder = tmp_path_factory.mktemp("ocr-marks")
    pdf = write(folder / "mixed-blurred.pdf", joined_pdf([(NDA.read_bytes(), 1), (scan, 0)]))
    library = Library(Settings(library_dir=folder / "library"), embedder)
    outcome = library.ingest(pdf)
    assert outcome.status == "added", outcome.message
    assert "low on p. 2)" in outcome.message
    return library


def hits_by_page(library: Library) -> dict[int, SearchHit]:
    """The best hit on each page of the document, for a query that reaches both."""
    hits = library.search("confidential disclosure agreement", k=20)
    return {hit.page_index: hit for hit in reversed(hits)}


def test_a_hit_from_a_low_confidence_scan_says_so(library):
    by_page = hits_by_page(library)
    scanned, text = by_page[1], by_page[0]
    assert scanned.low_confidence
    assert scanned.ocr_confidence is not None and scanned.ocr_confidence < LOW_CONFIDENCE
    assert scanned.page_note() == f"p. 2 · OCR, low confidence {scanned.ocr_confidence:.2f}"
    assert (text.ocr_confidence, text.low_confidence) == (None, False)
    assert text.page_note() == "p. 1"
    assert library.widen(scanned).low_confidence  # the mark survives widening


def test_search_json_carries_the_mark(library, monkeypatch, capsys):
    monkeypatch.setattr(engine.cli, "open_library", lambda args: library)
    assert (
        engine.cli.main(["search", "confidential disclosure agreement", "-k", "20", "--json"]) == 0
    )
    hits = json.loads(capsys.readouterr().out)
    scanned = next(hit for hit in hits if hit["page_index"] == 1)
    assert scanned["low_confidence"] is True and scanned["ocr_confidence"] < LOW_CONFIDENCE
    text = next(hit for hit in hits if hit["page_index"] == 0)
    assert text["low_confidence"] is False and text["ocr_confidence"] is None


def test_a_draft_saved_before_the_mark_still_loads(library):
    hit = hits_by_page(library)[1]
    draft = Draft(
        "summarise", [Block("Terms", Canvas.empty(4, 0), evidence=[hit])], DraftSettings(), 0
    )
    saved = draft_to_json(draft, [BlockText("", "▒▒▒▒", [], done=False)])
    for old in saved["blocks"][0]["evidence"]:  # as a draft saved before the fields existed
        del old["ocr_confidence"], old["low_confidence"]
    (loaded,) = draft_from_json(json.loads(json.dumps(saved))).blocks[0].evidence
    assert (loaded.ocr_confidence, loaded.low_confidence) == (None, False)
    assert loaded.text == hit.text and loaded.page_note() == "p. 2"
