"""How soon the first denoising step shows in the browser after a click on Start.

    python bench/ui_latency.py [--trials 5]

Starts `python app.py` on a temp library holding the sample PDFs, with a tiny model (so a step
costs a few milliseconds and what is measured is everything around it: the request, retrieval,
prompt building, persistence and rendering), drives Debian's Chromium with Playwright, and times
click -> first block header showing "step 1/". One untimed draft warms the model first. Prints
JSON: the latency of each trial, the median and the worst; the criterion is that it stays within
0.5 s of one step's own time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from engine.testmodels import build_tiny_bert

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
FIRST_STEP = """() => [...document.querySelectorAll('[id^="block-"][id$="-header"]')]
                  .some(h => /step [1-9]\\d*\\//.test(h.innerText))"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def one_trial(page, sections: str) -> float:
    page.fill("#sections textarea", sections)
    page.wait_for_function("() => true")
    started = time.perf_counter()
    page.click("#start")
    page.wait_for_function(FIRST_STEP, timeout=120_000, polling="raf")
    latency = time.perf_counter() - started
    page.wait_for_function(
        "() => document.querySelector('#draft-status').innerText.includes('Done')",
        timeout=120_000,
    )
    return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = build_tiny_bert(root / "model")
        env = dict(
            os.environ,
            PALIMPSEST_LIBRARY=str(root / "library"),
            HF_HUB_OFFLINE="1",
            PALIMPSEST_MODEL=str(model),
            no_proxy="127.0.0.1,localhost",
        )
        subprocess.run(
            [sys.executable, "-m", "engine", "ingest", "sample_docs"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        app = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                page = browser.new_page()
                page.goto(url)
                page.get_by_role("tab", name="Draft", exact=True).click()
                page.fill("#instruction textarea", "Draft the termination clauses.")
                one_trial(page, "Warm-up one\nWarm-up two")
                latencies = [
                    one_trial(page, "\n".join(f"Section {n} of trial {t}" for n in range(4)))
                    for t in range(args.trials)
                ]
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)
    print(
        json.dumps(
            {
                "sections": 4,
                "latency_s": [round(x, 3) for x in latencies],
                "median_s": round(statistics.median(latencies), 3),
                "worst_s": round(max(latencies), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
