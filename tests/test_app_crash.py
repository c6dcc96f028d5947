"""kill -9 of the web app (not the CLI) in the middle of an upload and in the middle of a draft.

`tests/test_kill_during_ingest.py` and `tests/test_draft_cli.py` kill the CLI; these kill
`python app.py` while a browser drives it, then restart it on the same library folder:

- Several PDFs uploaded at once through the Library tab (the real papers of ../shared/corpus when
  present, else the samples), killed once a document is complete and the next one is half
  written. On disk every document is then wholly present or wholly absent in SQLite (documents,
  pages, chunks), Chroma (vectors per document and in total), the BM25 index (a search for words
  only that document has) and the stored files; the restarted app lists exactly the complete
  documents, and uploading the same set again completes the library.
- A 4-section draft with the demo model, killed after the status line showed step 2 or later;
  the restarted app opens it at the last step saved in drafts.sqlite3, Resume finishes it, and
  every block's text (and every canvas token) equals an uninterrupted run of the same settings
  and seed by the CLI on the same library and model folder.

The library is inspected by `tests/library_state.py` in a separate process, so this process never
holds the embedded Chroma store the restarted app opens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from browser_support import STARTUP_S, AppServer, chromium, explained, running_app
from conftest import CORPUS_DIR, REPO_ROOT, SAMPLE_DIR, SAMPLE_PDFS, cli_env
from library_state import distinctive_queries
from playwright.sync_api import Browser, Page, expect
from test_browser_draft import VIEWPORT, meta, new_page, open_from_drafts, section_text, set_slider

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 120_000  # one browser step on a loaded 2-core machine
INGEST_S = 900  # the whole corpus (about 40 s alone), on a machine shared with other work
CHECK_S = 300  # one library inspection or CLI run (loading torch and Chroma)

# The draft: 4 sections of 64 tokens, 48 steps each; sampled (temperature) so that resuming
# exactly also needs the saved random-generator state, not only the canvases.
INSTRUCTION = "Draft the termination clauses of the services agreement after a crash."
HEADINGS = ["Termination for convenience", "Termination for cause", "Notice", "Effect"]
STEPS, TOKENS, TEMPERATURE, SEED = 48, 64, 0.9, 21


# -- the library on disk --------------------------------------------------------------------------


def upload_set() -> list[Path]:
    corpus = sorted(CORPUS_DIR.glob("*.pdf")) if CORPUS_DIR.is_dir() else []
    return corpus or list(SAMPLE_PDFS)


def library_state(mode: str, library_dir: Path, queries: dict[str, dict]) -> dict:
    """`tests/library_state.py` run in its own process; see its docstring."""
    probes = [f"--probe={doc_id}={q['query']}" for doc_id, q in queries.items()]
    result = subprocess.run(
        [sys.executable, "tests/library_state.py", mode, str(library_dir), *probes],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        capture_output=True,
        text=True,
        timeout=CHECK_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def statuses(database: Path) -> tuple[Counter, str | None]:
    """How many documents are in each status, and the name of the pending one (if one is);
    nothing while the catalog does not exist yet."""
    try:
        with sqlite3.connect(database, timeout=1) as db:
            rows = db.execute("SELECT status, filename FROM documents").fetchall()
    except sqlite3.Error:
        return Counter(), None
    pending = [name for status, name in rows if status == "pending"]
    return Counter(status for status, _ in rows), (pending[0] if pending else None)


def wait_until_mid_document(
    page: Page, server: AppServer, database: Path, total: int, several_batches: bool
) -> str:
    """Wait until a document is complete and the next one is half written: pending in SQLite,
    and (for PDFs of several embedding batches) a first batch of its vectors in Chroma, which
    the upload's progress shows as "adding NAME". Returns that name."""
    deadline = time.monotonic() + INGEST_S
    pending_since: dict[str, float] = {}
    while True:
        counts, pending = statuses(database)
        assert server.process.poll() is None, "the app died during the upload"
        assert counts["ready"] < total, "the upload finished before the kill"
        assert time.monotonic() < deadline, f"no document became ready: {counts}"
        if counts["ready"] >= 1 and pending:
            if not several_batches:
                return pending
            adding = page.evaluate(
                "(text) => document.body.innerText.includes(text)", f"adding {pending}"
            )
            since = pending_since.setdefault(pending, time.monotonic())
            if adding or time.monotonic() - since > 30:  # no progress shown: kill anyway
                return pending
        time.sleep(0.02)


def assert_whole(state: dict, doc_id: str, name: str) -> None:
    """The document is complete in every store (and, when searched, found by its own words)."""
    record = state["documents"].get(doc_id)
    assert record is not None and record["status"] == "ready", f"{name}: {record}"
    assert record["chunks"] > 0, f"{name}: no chunks"
    assert state["page_rows"].get(doc_id) == record["pages"], f"{name}: pages"
    assert state["chunk_rows"].get(doc_id) == record["chunks"], f"{name}: chunk rows"
    assert state["vectors"].get(doc_id) == record["chunks"], f"{name}: vectors"
    assert f"{doc_id}.pdf" in state["files"], f"{name}: stored file"
    if "found" in state:
        found = state["found"][doc_id]
        assert found and set(found) == {doc_id}, f"{name}: its own words found {found}"


def assert_gone(state: dict, doc_id: str, name: str) -> None:
    """Nothing of the document is left in any store."""
    assert doc_id not in state["documents"], f"{name}: {state['documents'][doc_id]}"
    assert state["page_rows"].get(doc_id, 0) == 0, f"{name}: page rows left"
    assert state["chunk_rows"].get(doc_id, 0) == 0, f"{name}: chunk rows left"
    assert state["vectors"].get(doc_id, 0) == 0, f"{name}: vectors left"
    assert not [f for f in state["files"] if doc_id in f], f"{name}: file left"
    if "found" in state:
        assert state["found"][doc_id] == [], f"{name}: its words still find {state['found']}"


def assert_consistent(state: dict, present: set[str], queries: dict[str, dict]) -> None:
    for doc_id, query in queries.items():
        check = assert_whole if doc_id in present else assert_gone
        check(state, doc_id, query["filename"])
    chunks = sum(state["documents"][doc_id]["chunks"] for doc_id in present)
    assert state["vectors_total"] == chunks, "vectors of no complete document are in Chroma"
    assert sorted(state["documents"]) == sorted(present)
    assert state["files"] == sorted(f"{doc_id}.pdf" for doc_id in present)


# -- the browser ----------------------------------------------------------------------------------


def open_app(browser: Browser, server: AppServer) -> Page:
    page = new_page(browser.new_context(viewport=VIEWPORT), server)
    page.set_default_timeout(WAIT_MS)
    return page


def upload(page: Page, paths: list[Path]) -> None:
    """Put several files into the Library tab's file input at once, as a user dropping them."""
    file_input = page.locator("input[type=file][accept*='.pdf']")
    expect(file_input).to_have_count(1)
    file_input.set_input_files([str(path) for path in paths])


def listed_documents(page: Page, expected: list[str]) -> list[str]:
    """The names in the documents table, once it shows `expected` (or after a while)."""
    cells = page.locator("#documents-table [role=gridcell][data-col='0']")
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        names = sorted(text.strip() for text in cells.all_inner_texts())
        if names == sorted(expected) or time.monotonic() > deadline:
            return names
        page.wait_for_timeout(250)


def kill(server: AppServer) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    shutil.copy(server.log_path, server.log_path.with_suffix(".killed.log"))


# -- the tests ------------------------------------------------------------------------------------


def test_kill_9_during_a_multi_file_upload_then_restart_and_upload_again(tmp_path: Path) -> None:
    pdfs = upload_set()
    queries = distinctive_queries(pdfs)
    names = {doc_id: query["filename"] for doc_id, query in queries.items()}
    library_dir = tmp_path / "library"
    database = library_dir / "library.sqlite3"
    env = cli_env(library_dir, PALIMPSEST_MODEL="demo")

    with running_app(tmp_path, env) as server, chromium() as browser:
        page = open_app(browser, server)
        with explained(server, page):
            upload(page, pdfs)
            several_batches = pdfs[0].parent == CORPUS_DIR  # the samples have one batch each
            in_flight_name = wait_until_mid_document(
                page, server, database, len(pdfs), several_batches
            )
            kill(server)
    counts, pending = statuses(database)
    assert pending == in_flight_name and counts["ready"] >= 1, f"the kill missed: {counts}"

    # As the killed process left it: complete documents are whole, the one in flight is marked
    # pending (which is what lets the next start undo it), and nothing else is there.
    raw = library_state("raw", library_dir, queries)
    ready = {d for d, r in raw["documents"].items() if r["status"] == "ready"}
    pending = [d for d, r in raw["documents"].items() if r["status"] == "pending"]
    assert len(pending) == 1 and set(raw["documents"]) <= set(queries), raw["documents"]
    for doc_id in ready:
        assert_whole(raw, doc_id, names[doc_id])
    in_flight = raw["documents"][pending[0]]
    assert raw["vectors"][pending[0]] <= in_flight["chunks"]
    print(
        f"killed with {len(ready)} of {len(pdfs)} documents complete; {names[pending[0]]} had "
        f"{raw['vectors'][pending[0]]} of {in_flight['chunks']} vectors stored"
    )

    # Opened as a library (on a copy, so the app below meets the crash as it was): every
    # document is wholly there or wholly gone, in every store, search included.
    recovered = library_state("recovered", shutil.copytree(library_dir, tmp_path / "copy"), queries)
    assert_consistent(recovered, ready, queries)

    with running_app(tmp_path, env) as server, chromium() as browser:
        page = open_app(browser, server)
        with explained(server, page):
            complete = [names[doc_id] for doc_id in ready]
            assert listed_documents(page, complete) == sorted(complete)
            upload(page, pdfs)
            log = page.locator("#upload-log textarea")
            every_file = "".join(f"(?=[\\s\\S]*{re.escape(path.name)})" for path in pdfs)
            expect(log).to_have_value(re.compile(every_file), timeout=INGEST_S * 1000)
            lines = log.input_value().splitlines()
            for doc_id, name in names.items():
                status = "duplicate" if doc_id in ready else "added"
                assert any(line.startswith(f"{status}: {name}:") for line in lines), lines
            assert listed_documents(page, list(names.values())) == sorted(names.values())
            assert page.errors == []  # type: ignore[attr-defined]

    assert_consistent(library_state("recovered", library_dir, queries), set(queries), queries)


def saved_draft(library_dir: Path) -> dict:
    """The one draft in drafts.sqlite3, as last saved."""
    with sqlite3.connect(library_dir / "drafts.sqlite3", timeout=30) as db:
        rows = db.execute("SELECT body FROM drafts").fetchall()
    assert len(rows) == 1, f"{len(rows)} drafts saved"
    return json.loads(rows[0][0])


def canvases(library_dir: Path, draft_id: str) -> list[dict]:
    with sqlite3.connect(library_dir / "drafts.sqlite3", timeout=30) as db:
        body = db.execute("SELECT body FROM drafts WHERE draft_id = ?", (draft_id,)).fetchone()
    return [block["canvas"] for block in json.loads(body[0])["blocks"]]


def fill_draft(page: Page) -> None:
    page.locator("button[role=tab][data-tab-id=draft]").click()
    toggle = page.locator("#settings > button").first
    toggle.click()
    set_slider(page, "Steps per section", STEPS)
    set_slider(page, "Tokens per section", TOKENS)
    set_slider(page, "Temperature", TEMPERATURE)
    seed = page.get_by_label("Seed", exact=True)
    seed.fill(str(SEED))
    seed.press("Tab")
    expect(seed).to_have_value(str(SEED))
    toggle.click()
    page.locator("#instruction textarea").fill(INSTRUCTION)
    page.locator("#sections textarea").fill("\n".join(HEADINGS))


def test_kill_9_during_a_draft_then_resume_in_the_browser_equals_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    library_dir = tmp_path / "library"
    env = cli_env(library_dir, PALIMPSEST_MODEL="demo")
    ingest = subprocess.run(
        [sys.executable, "-m", "engine", "ingest", str(SAMPLE_DIR)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr

    with running_app(tmp_path, env) as server, chromium() as browser:
        page = open_app(browser, server)
        with explained(server, page):
            fill_draft(page)
            page.locator("#start").click()
            page.wait_for_function(
                """() => {
                    const status = document.querySelector('#draft-status').innerText;
                    const step = /Drafting… step (\\d+)/.exec(status);
                    return step && Number(step[1]) >= 2;
                }""",
                polling="raf",
                timeout=WAIT_MS,
            )
            shown = page.locator("#draft-status").inner_text()
            kill(server)
    saved = saved_draft(library_dir)
    shown_step = int(re.search(r"step (\d+)", shown).group(1))
    at = saved["step"]
    assert 2 <= shown_step <= at < STEPS, f"the kill missed: showed {shown!r}, saved step {at}"
    assert [b["step"] for b in saved["blocks"]] == [at] * len(HEADINGS)
    print(f"killed after the status showed step {shown_step}; step {at} of {STEPS} was saved")

    with running_app(tmp_path, env) as server, chromium() as browser:
        page = open_app(browser, server)
        with explained(server, page):
            open_from_drafts(page, INSTRUCTION)
            status = page.locator("#draft-status")
            expect(status).to_contain_text(f"Opened at step {at}")
            for index in range(len(HEADINGS)):
                expect(meta(page, index)).to_contain_text(f"step {at}/{STEPS}")
            assert "▒" in section_text(page, 0)  # still masked where the kill stopped it
            page.locator("#resume").click()
            expect(status).to_contain_text("Done.", timeout=WAIT_MS)
            for index in range(len(HEADINGS)):
                expect(meta(page, index)).to_contain_text(f"step {STEPS}/{STEPS} · done")
            resumed = [section_text(page, index) for index in range(len(HEADINGS))]
            assert page.errors == []  # type: ignore[attr-defined]

    # The same draft, uninterrupted, by the CLI on the same library and the same model folder.
    model = library_dir / "models" / "demo-tiny-bert"
    assert (model / "config.json").is_file(), "the demo model is not where the app built it"
    sections = [arg for heading in HEADINGS for arg in ("--section", heading)]
    reference = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "draft",
            INSTRUCTION,
            *sections,
            "--model",
            str(model),
            "--steps",
            str(STEPS),
            "--block-tokens",
            str(TOKENS),
            "--temperature",
            str(TEMPERATURE),
            "--seed",
            str(SEED),
            "--json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_S,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    whole = json.loads(reference.stdout)
    assert whole["done"] and [b["heading"] for b in whole["blocks"]] == HEADINGS
    assert resumed == [block["text"] for block in whole["blocks"]]
    assert canvases(library_dir, saved["draft_id"]) == canvases(library_dir, whole["draft_id"])
