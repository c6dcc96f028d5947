"""The Library tab in a real browser: `python app.py` driven by Playwright through Chromium.

One app process serves the whole module (starting it loads the embedding model); each test opens
its own browser page. Screenshots of the main states go to `test-artifacts/` (git-ignored).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SAMPLE_DIR, cli_env
from helpers import free_port, wait_for_http
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
STARTUP_S = 240  # loading torch, the embedding model and Gradio on a busy 2-core machine
WAIT_MS = 60_000  # one upload or search, generous for a loaded CPU
NDA = SAMPLE_DIR / "nda.pdf"


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    library_dir: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen) -> None:
    """Terminate a process we started, and kill it if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("browser-app")
    library_dir = root / "library"
    log_path = root / "app.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = cli_env(library_dir, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--library", str(library_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = AppServer(url, process, log_path, library_dir)
    try:
        waited = 0.0
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"app.py exited with code {process.returncode} before serving\n"
                    f"--- app log tail ---\n{server.log_tail()}"
                )
            try:
                wait_for_http(url, timeout_s=3)
                break
            except TimeoutError:
                waited += 3
                if waited >= STARTUP_S:
                    pytest.fail(
                        f"app.py did not serve {url} within {STARTUP_S} s\n"
                        f"--- app log tail ---\n{server.log_tail()}"
                    )
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser(app_server: AppServer) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


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


@contextmanager
def explained(server: AppServer, page: Page | None = None) -> Iterator[None]:
    """Re-raise a failed expectation with the app's log tail (and page errors) attached."""
    try:
        yield
    except (AssertionError, PlaywrightError) as error:
        alive = (
            "running" if server.process.poll() is None else f"exited {server.process.returncode}"
        )
        page_errors = getattr(page, "errors", []) if page is not None else []
        raise AssertionError(
            f"{error}\n--- app ({alive}) log tail ---\n{server.log_tail()}"
            + (f"\n--- page errors ---\n{page_errors}" if page_errors else "")
        ) from error


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"library-{name}.png"), full_page=True)


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
