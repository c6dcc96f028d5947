"""OCR throughput and accuracy on sample pages rendered as scans, per engine (issue 12).

    python bench/ocr.py [--variants clean skewed noisy 150dpi 100dpi]
                        [--engines rapidocr tesseract] [--threads N]

Each variant turns the chosen sample pages (`PAGES`: body text, a contents page, a two-column
page) into one image-only PDF, the way tests/test_ocr.py does, and parses it as an upload is
parsed (render, recognise, reading order) once with each engine: the same PDF for both. Prints
JSON: per variant and engine the pages/s, the character error rate against the page's own text
layer (mean and per page; typographic quotes and dashes folded, whitespace collapsed), the
recognition confidence and the pages flagged low-confidence; a `table` of pages/s and mean CER
side by side; and, for comparison, pages/s of reading the same pages' text layers. Tesseract is
measured only where it is installed (engine/ocr_tesseract.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from scan_fixtures import (  # noqa: E402
    character_error_rate,
    comparable,
    image_pdf,
    joined_pdf,
    noisy,
    reference_text,
    render_page,
    skewed,
)

from engine import ocr_tesseract  # noqa: E402
from engine.documents import parse_pdf  # noqa: E402
from engine.ocr import ENGINES, TESSERACT, OcrOptions  # noqa: E402

SAMPLES = HERE.parent / "sample_docs"
PAGES = [
    ("nda.pdf", 0),
    ("nda.pdf", 1),
    ("services-agreement.pdf", 0),
    ("services-agreement.pdf", 2),
    ("data-protection-act.pdf", 2),
    ("research-note.pdf", 0),
]
# variant -> (dpi of the scan, what is done to the 300 dpi or lower render)
VARIANTS: dict[str, tuple[int, Callable[[Image.Image], Image.Image]]] = {
    "clean": (300, lambda image: image),
    "skewed": (300, lambda image: skewed(image, 1.5)),
    "noisy": (300, lambda image: noisy(image, sigma=40)),
    "150dpi": (150, lambda image: image),
    "100dpi": (100, lambda image: image),
}


def scan_of(name: str) -> bytes:
    """The variant's image-only PDF of `PAGES`."""
    dpi, degrade = VARIANTS[name]
    return image_pdf([degrade(render_page(SAMPLES / pdf, index, dpi)) for pdf, index in PAGES], dpi)


def measure(scan: bytes, name: str, options: OcrOptions) -> dict:
    """One engine's speed and accuracy on one variant's scan."""
    started = time.perf_counter()
    parsed = parse_pdf(scan, filename=f"{name}.pdf", max_pages=len(PAGES), ocr=options)
    seconds = time.perf_counter() - started
    rates = {
        f"{pdf}:{index}": round(
            character_error_rate(
                comparable(reference_text(SAMPLES / pdf, index)), comparable(page.text)
            ),
            4,
        )
        for (pdf, index), page in zip(PAGES, parsed.pages, strict=True)
    }
    return {
        "dpi": VARIANTS[name][0],
        "pages": len(PAGES),
        "seconds": round(seconds, 2),
        "pages_per_s": round(len(PAGES) / seconds, 3),
        "cer_mean": round(statistics.mean(rates.values()), 4),
        "cer": rates,
        "confidence_mean": round(parsed.ocr_confidence or 0.0, 4),
        "confidence": {
            f"{pdf}:{index}": round(page.ocr.confidence, 4) if page.ocr else None
            for (pdf, index), page in zip(PAGES, parsed.pages, strict=True)
        },
        "low_confidence_pages": parsed.low_confidence_pages,
    }


def side_by_side(results: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per variant: each engine's pages/s and mean CER."""
    return [
        {"variant": variant}
        | {
            f"{engine}_{key}": result[key]
            for engine, result in by_engine.items()
            for key in ("pages_per_s", "cer_mean")
        }
        for variant, by_engine in results.items()
    ]


def measure_text_layer() -> dict:
    document = joined_pdf([((SAMPLES / pdf).read_bytes(), index) for pdf, index in PAGES])
    started = time.perf_counter()
    parse_pdf(document, filename="text.pdf", max_pages=len(PAGES))
    seconds = time.perf_counter() - started
    return {"pages": len(PAGES), "pages_per_s": round(len(PAGES) / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    installed = [e for e in ENGINES if e != TESSERACT or ocr_tesseract.available()]
    parser.add_argument("--engines", nargs="+", default=installed, choices=installed)
    parser.add_argument("--threads", type=int, default=OcrOptions().threads)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, dict]] = {}
    for name in args.variants:
        scan = scan_of(name)
        results[name] = {
            engine: measure(scan, name, OcrOptions(args.threads, 600.0, engine))
            for engine in args.engines
        }
    report = {
        "threads": args.threads,
        "engines": args.engines,
        "text_layer": measure_text_layer(),
        "table": side_by_side(results),
        "ocr": results,
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
