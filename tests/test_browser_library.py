"""The Library tab in a real browser: `python app.py` driven by Playwright through Chromium.

One app process serves the whole module (starting it loads the embedding model); each test opens
its own browser page. Screenshots of the main states go to `test-artifacts/` (git-ignored).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    AppServer,
    chromium,
    explained,
    running_app,
    save_screenshot,
)
from conftest import SAMPLE_DIR, cli_env
from helpers import wait_for_http
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

WAIT_MS = 60_000  # one upload or search, generous for a loaded CPU
NDA = SAMPLE_DIR / "nda.pdf"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("browser-app")
    with running_app(root, cli_env(root / "library")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(app_server: AppServer) -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    with explained(app_server, page):
        page.goto(app_server.url, wait_until="domcontentloaded")
        expect(page.locator("#documents-table")).to_be_visible(timeout=WAIT_MS)
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    save_screenshot(page, f"library-{name}")


def upload_log(page: Page):
    return page.locator("#upload-log textarea")


def upload(page: Page, path: Path) -> None:
    """Put one file into the Library tab's file input, as a user picking it would."""
    # The Dataframes carry hidden CSV-import inputs too: pick the one that accepts PDFs.
    file_input = page.locator("input[type=file][accept*='.pdf']")
    expect(file_input).to_have_count(1)
    file_input.set_input_files(str(path))


def ensure_nda(page: Page) -> None:
    """The NDA in the library, for a test run on its own (a re-upload is a no-op)."""
    upload(page, NDA)
    expect(upload_log(page)).to_have_value(re.compile(r"(added|duplicate): nda\.pdf"))


def test_upload_pdf_shows_in_table_and_log(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        screenshot(page, "1-empty")
        upload(page, NDA)
        expect(upload_log(page)).to_have_value(re.compile(r"added: nda\.pdf"), timeout=WAIT_MS)
        expect(page.locator("#documents-table")).to_contain_text("nda.pdf", timeout=WAIT_MS)
        screenshot(page, "2-uploaded")
        assert "failed" not in upload_log(page).input_value()


def test_search_finds_uploaded_pdf(page: Page, app_server: AppServer) -> None:
    with explained(app_server, page):
        ensure_nda(page)
        box = page.locator("#search-box textarea, #search-box input").first
        box.fill("trade secrets confidentiality period")
        page.locator("#search-button").click()
        results = page.locator("#search-results")
        expect(results).to_contain_text("nda.pdf", timeout=WAIT_MS)
        screenshot(page, "3-search")


def test_upload_non_pdf_fails_clearly(page: Page, app_server: AppServer, tmp_path: Path) -> None:
    junk = tmp_path / "not-really.pdf"
    data = random.Random(7).randbytes(4096)
    assert b"%PDF" not in data
    junk.write_bytes(data)
    with explained(app_server, page):
        upload(page, junk)
        expect(upload_log(page)).to_have_value(
            re.compile(r"failed: not-really\.pdf: .*not a PDF"), timeout=WAIT_MS
        )
        screenshot(page, "4-not-a-pdf")
        expect(page.locator("#documents-table")).not_to_contain_text("not-really.pdf")
        # The app is still serving: the page answers a search after the failure.
        ensure_nda(page)
        page.locator("#search-box textarea, #search-box input").first.fill("confidential")
        page.locator("#search-button").click()
        expect(page.locator("#search-results")).to_contain_text("nda.pdf", timeout=WAIT_MS)
    assert app_server.process.poll() is None, app_server.log_tail()
    wait_for_http(app_server.url, timeout_s=30)


def test_fresh_page_lists_documents_already_in_library(
    page: Page, browser: Browser, app_server: AppServer
) -> None:
    try:
        with explained(app_server, page):
            ensure_nda(page)
    except AssertionError as error:  # a setup failure must not pass as the expected failure
        pytest.fail(f"could not put nda.pdf in the library: {error}")
    context = browser.new_context(viewport={"width": 1366, "height": 1000})
    try:
        fresh = context.new_page()
        fresh.goto(app_server.url, wait_until="domcontentloaded")
        with explained(app_server, fresh):
            expect(fresh.locator("#documents-table")).to_be_visible(timeout=WAIT_MS)
            screenshot(fresh, "5-fresh-page")
            expect(fresh.locator("#documents-table")).to_contain_text("nda.pdf", timeout=10_000)
    finally:
        context.close()
