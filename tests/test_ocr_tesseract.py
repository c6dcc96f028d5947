"""Tesseract as the optional OCR engine (issue 12): chosen by PALIMPSEST_OCR_ENGINE, used only
where it is installed. The tests that run it skip on a machine without `tesseract`."""

from __future__ import annotations

import shutil

import pytest
from conftest import SAMPLE_DIR
from scan_fixtures import (
    character_error_rate,
    comparable,
    image_pdf,
    reference_text,
    render_page,
    top_part,
)

from engine import ocr_tesseract, page_images
from engine.documents import IngestError, parse_pdf
from engine.ocr import RAPIDOCR, TESSERACT, OcrError, OcrOptions, PageOcr, chosen_engine

NDA = SAMPLE_DIR / "nda.pdf"
DPI = 300
PHRASE = "predictive maintenance of hospital infusion pumps"
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="no tesseract")


@needs_tesseract
def test_tesseract_reads_a_clean_page_into_the_same_page_ocr():
    scan = image_pdf([render_page(NDA, 0, DPI)], DPI)
    options = OcrOptions(threads=1, page_seconds=120.0, engine=TESSERACT)
    (page,) = parse_pdf(scan, filename="scan.pdf", max_pages=1, ocr=options).pages
    ocr = page.ocr
    error_rate = character_error_rate(comparable(reference_text(NDA, 0)), comparable(page.text))
    print(f"Tesseract CER at 300 dpi: {error_rate:.4f}, confidence {ocr.confidence:.3f}")
    assert error_rate < 0.02
    assert ocr.engine == TESSERACT and not page.low_confidence
    assert all(len(line.spans) == len(line.text) for line in ocr.lines)
    assert len(page_images.ocr_quads(ocr, PHRASE)) >= len(PHRASE.replace(" ", ""))
    assert PageOcr.from_json(ocr.to_json()).engine == TESSERACT


def test_the_engine_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PALIMPSEST_OCR_ENGINE", "Tesseract")
    assert OcrOptions().engine == TESSERACT
    monkeypatch.delenv("PALIMPSEST_OCR_ENGINE")
    assert OcrOptions().engine == RAPIDOCR


def test_tesseract_configured_but_absent_falls_back_to_rapidocr(monkeypatch):
    monkeypatch.setattr(ocr_tesseract, "available", lambda: False)
    assert chosen_engine(OcrOptions(engine=TESSERACT)) == RAPIDOCR


def test_an_unknown_engine_is_a_one_line_error():
    with pytest.raises(OcrError, match="unknown OCR engine 'abbyy'.*rapidocr or tesseract"):
        chosen_engine(OcrOptions(engine="abbyy"))


def test_pages_stored_before_there_were_two_engines_were_read_by_rapidocr():
    stored = {"confidence": 0.9, "seconds": 1.0, "rows": []}
    page = PageOcr.from_json(stored)
    assert page.engine == RAPIDOCR and page.low_confidence


@needs_tesseract
def test_a_language_without_its_model_fails_in_one_line():
    scan = image_pdf([top_part(render_page(NDA, 0, 100), 100, 120)], 100)
    options = OcrOptions(threads=1, page_seconds=60.0, engine=TESSERACT, languages="xyz")
    with pytest.raises(IngestError, match=r"^page 1: tesseract failed \(Failed loading language"):
        parse_pdf(scan, filename="scan.pdf", max_pages=1, ocr=options)
