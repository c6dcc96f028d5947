"""What the browser tests share: starting `python app.py` on a free port, Debian's Chromium, and
failure messages that carry the app's log."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from helpers import free_port, wait_for_http
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

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
LOCAL = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


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


@contextmanager
def running_app(
    root: Path, env: dict[str, str], extra_args: Sequence[str] = ()
) -> Iterator[AppServer]:
    """`python app.py` on a free port with the library `root/library`, until the block ends."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    library_dir = root / "library"
    log_path = root / "app.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "app.py",
                "--port",
                str(port),
                "--library",
                str(library_dir),
                *extra_args,
            ],
            cwd=REPO_ROOT,
            env={**env, **LOCAL, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = AppServer(url, process, log_path, library_dir)
    try:
        deadline = time.monotonic() + STARTUP_S
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
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"app.py did not serve {url} within {STARTUP_S} s\n"
                        f"--- app log tail ---\n{server.log_tail()}"
                    )
        yield server
    finally:
        stop(process)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


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


def save_screenshot(page: Page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
