"""OCR throughput and accuracy on sample pages rendered as scans (issue 12).

    python bench/ocr.py [--variants clean skewed noisy 150dpi 100dpi] [--threads N]

Each variant turns the chosen sample pages (`PAGES`: body text, a contents page, a two-column
page) into one image-only PDF, the way tests/test_ocr.py does, and parses it as an upload is
parsed (render, detect, recognise, reading order). Prints JSON: per variant the pages/s, the
character error rate against the page's own text layer (mean and per page; typographic quotes
and dashes folded, whitespace collapsed) and the recognition confidence; and, for comparison,
pages/s of reading the same pages' text layers.
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

from engine.documents import parse_pdf  # noqa: E402
from engine.ocr import OcrOptions  # noqa: E402

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


def measure_variant(name: str, options: OcrOptions) -> dict:
    dpi, degrade = VARIANTS[name]
    images = [degrade(render_page(SAMPLES / pdf, index, dpi)) for pdf, index in PAGES]
    scan = image_pdf(images, dpi)
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
        "dpi": dpi,
        "pages": len(PAGES),
        "seconds": round(seconds, 2),
        "pages_per_s": round(len(PAGES) / seconds, 3),
        "cer_mean": round(statistics.mean(rates.values()), 4),
        "cer": rates,
        "confidence_mean": round(parsed.ocr_confidence or 0.0, 4),
        "low_confidence_pages": parsed.low_confidence_pages,
    }


def measure_text_layer() -> dict:
    document = joined_pdf([((SAMPLES / pdf).read_bytes(), index) for pdf, index in PAGES])
    started = time.perf_counter()
    parse_pdf(document, filename="text.pdf", max_pages=len(PAGES))
    seconds = time.perf_counter() - started
    return {"pages": len(PAGES), "pages_per_s": round(len(PAGES) / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=OcrOptions().threads)
    args = parser.parse_args(argv)
    options = OcrOptions(threads=args.threads, page_seconds=600.0)
    report = {
        "threads": args.threads,
        "text_layer": measure_text_layer(),
        "ocr": {name: measure_variant(name, options) for name in args.variants},
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
