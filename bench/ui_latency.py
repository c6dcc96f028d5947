"""How soon the browser shows what a click asked for, on a short and on a 30-section draft.

    python bench/ui_latency.py [--trials 5]

Starts `python app.py` on a temp library holding the sample PDFs, with a tiny model (so a step
costs a few milliseconds and what is measured is everything around it: the request, retrieval,
prompt building, persistence and rendering), drives Debian's Chromium with Playwright, and times,
for drafts of 4 and of 30 sections:
- click on Start -> the first section header showing "step 1/";
- a selection pinned from the toolbar -> the pinned highlight drawn (a whole-document update);
- a click on the outline -> the section panel showing that section (a focus round trip).
One untimed draft warms the model first. Prints JSON: each trial, the median and the worst.
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
FIRST_STEP = """() => [...document.querySelectorAll('.doc-meta')]
                  .some(h => /step [1-9]\\d*\\//.test(h.innerText))"""
SELECT_FIRST_WORD = """(box) => {
    const node = [...box.childNodes].find(n => n.textContent.trim());
    const text = node.nodeType === 3 ? node : node.firstChild;
    const range = document.createRange();
    range.setStart(text, 0);
    range.setEnd(text, Math.max(1, text.data.indexOf(' ')));
    box.focus();
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
}"""


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


def timed(page, action, done: str, arg=None) -> float:
    started = time.perf_counter()
    action()
    page.wait_for_function(done, arg=arg, timeout=120_000, polling="raf")
    return time.perf_counter() - started


def one_trial(page, sections: int, trial: int) -> dict[str, float]:
    """Start a draft of `sections` sections; time its first step, a pin and a focus."""
    headings = "\n".join(f"Section {n} of trial {trial}" for n in range(sections))
    page.fill("#sections textarea", headings)
    first_step = timed(page, lambda: page.click("#start"), FIRST_STEP)
    page.wait_for_function(
        "() => document.querySelector('#draft-status').innerText.includes('Done')",
        timeout=120_000,
    )
    last = sections - 1
    page.locator(f"#sec-{last}-text").evaluate(SELECT_FIRST_WORD)
    pin = timed(
        page,
        lambda: page.click("#selection-toolbar button[data-op=pin]"),
        f"() => document.querySelector('#sec-{last}-text span.pin') !== null",
    )
    target = sections // 2
    focus = timed(
        page,
        lambda: page.locator(".doc-outline a").nth(target).click(),
        "(n) => document.querySelector('#section-panel h3')?.innerText.startsWith(n + '.')",
        arg=str(target + 1),
    )
    return {"first_step_s": first_step, "pin_s": pin, "focus_s": focus}


def summary(trials: list[dict[str, float]]) -> dict:
    return {
        name: {
            "trials": [round(t[name], 3) for t in trials],
            "median": round(statistics.median(t[name] for t in trials), 3),
            "worst": round(max(t[name] for t in trials), 3),
        }
        for name in trials[0]
    }


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
                toggle = page.locator("#settings > button").first
                toggle.click()
                for label, value in (("Steps per section", 8), ("Tokens per section", 24)):
                    box = page.get_by_label(f"number input for {label}")
                    box.fill(str(value))
                    box.press("Enter")
                toggle.click()
                one_trial(page, 2, -1)  # warm-up
                results = {
                    sections: summary([one_trial(page, sections, t) for t in range(args.trials)])
                    for sections in (4, 30)
                }
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)
    print(json.dumps({"steps": 8, "tokens": 24, "sections": results}, indent=2))


if __name__ == "__main__":
    main()
