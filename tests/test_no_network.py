"""No network: ingestion, search and drafting, from the CLI and from the web app in a browser, with
every connection that would leave the machine refused (loopback stays open), as offline.

Two watchers:
- `tests/netguard/sitecustomize.py`, loaded at the start of every Python subprocess, refuses
  non-loopback connections, datagrams and name lookups made from Python with `OSError` (what an
  offline machine answers) and logs each attempt with the stack that made it;
- strace, where it works, records the connect/send system calls of the whole process tree, so
  native code that bypasses Python's sockets (Chroma's Rust core, tokenizers, hf_xet) is seen too.

What is under test is the project's own defaults, so the subprocesses get no offline or telemetry
switch (HF_HUB_OFFLINE, GRADIO_ANALYTICS_ENABLED, ANONYMIZED_TELEMETRY, ...), no PALIMPSEST_*
settings and an empty Hugging Face cache. The tests pass only if nothing was even attempted.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LOCAL,
    STARTUP_S,
    AppServer,
    explained,
    save_screenshot,
)
from conftest import REPO_ROOT, SAMPLE_DIR, SAMPLE_PDFS
from drafting_fixtures import INSTRUCTION
from helpers import free_port, wait_for_http

from engine.config import DEFAULT_MODEL

NETGUARD = Path(__file__).resolve().parent / "netguard"
# Switches that would make a library behave offline or stay quiet: the project must not need them.
SWITCHES = {
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "GRADIO_ANALYTICS_ENABLED",
    "ANONYMIZED_TELEMETRY",
    "HF_HUB_DISABLE_TELEMETRY",
    "DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
}
CLI_TIMEOUT_S = 300
HUB_HANG_GUARD_S = 60  # the hub probe gives up after 5 s; blocked, it should fail at once
WAIT_MS = 60_000
# Chromium's own background traffic off, on top of the flags every browser test uses.
QUIET_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-breakpad",
    "--no-pings",
    "--dns-prefetch-disable",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
]


# ---------------------------------------------------------------------------------------------
# The guard and the syscall trace


@dataclass
class Guarded:
    """Where one guarded process tree reports: Python's refused attempts, and its syscalls."""

    root: Path
    env: dict[str, str]

    @property
    def attempts_log(self) -> Path:
        return self.root / "network-attempts.log"

    def trace_file(self, name: str) -> Path:
        return self.root / f"{name}.strace"

    def command(self, name: str, *args: str) -> list[str]:
        """`python *args`, under strace when strace works here."""
        trace = [] if not strace_works() else strace_args(self.trace_file(name))
        return [*trace, sys.executable, *args]

    def attempts(self) -> list[str]:
        """Every refused attempt (Python) and every outbound system call (native) so far."""
        python = self.attempts_log.read_text().splitlines() if self.attempts_log.exists() else []
        native = [
            f"native: {line}"
            for trace in sorted(self.root.glob("*.strace"))
            for line in trace.read_text(errors="replace").splitlines()
            if leaves_machine(line)
        ]
        return python + native

    def ran_in(self, argument: str) -> bool:
        """Whether the guard was installed in a process with `argument` on its command line."""
        installed = Path(f"{self.attempts_log}.installed")
        lines = installed.read_text().splitlines() if installed.exists() else []
        return any(repr(argument) in line for line in lines)


def guarded(root: Path) -> Guarded:
    """A fresh guarded environment under `root`: library, empty HF cache, attempt log."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SWITCHES and not name.startswith("PALIMPSEST_")
    }
    pythonpath = [str(NETGUARD), env.get("PYTHONPATH", "")]
    guard = Guarded(root, env)
    env.update(
        PYTHONPATH=os.pathsep.join(part for part in pythonpath if part),
        PALIMPSEST_NETGUARD_LOG=str(guard.attempts_log),
        PALIMPSEST_LIBRARY=str(root / "library"),
        HF_HOME=str(root / "hf-home"),  # nothing cached: loading must not need the hub anyway
        PYTHONUNBUFFERED="1",
        **LOCAL,
    )
    return guard


def strace_args(trace: Path) -> list[str]:
    calls = "trace=connect,sendto,sendmsg,sendmmsg"
    return [
        "strace", "-f", "-qq", "--seccomp-bpf", "-e", calls, "-e", "signal=none", "-o", str(trace)
    ]  # fmt: skip


@cache
def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(
        [*strace_args(Path(os.devnull)), sys.executable, "-c", "pass"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')


def leaves_machine(strace_line: str) -> bool:
    """An IP connect/send to anywhere but this machine, or any DNS query (port 53), even local."""
    for port, host in IPV4.findall(strace_line) + IPV6.findall(strace_line):
        address = ipaddress.ip_address(host)
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if port == "53" or not (address.is_loopback or address.is_unspecified):
            return True
    return False


def assert_nothing_attempted(guard: Guarded, what: str, argument: str) -> None:
    assert guard.ran_in(argument), f"the guard was not installed in {what}"
    attempts = guard.attempts()
    assert not attempts, f"{what} tried the network:\n" + "\n".join(attempts)


def run_cli(guard: Guarded, name: str, *args: str, timeout: float = CLI_TIMEOUT_S):
    return subprocess.run(
        guard.command(name, "-m", "engine", *args),
        cwd=REPO_ROOT,
        env=guard.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def succeeded(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == 0


def explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stderr ---\n{result.stderr[-3000:]}"


# ---------------------------------------------------------------------------------------------
# The CLI


def test_the_watchers_see_python_and_native_attempts_and_leave_loopback_open(
    tmp_path: Path,
) -> None:
    """The guard refuses and logs a Python request; strace sees a connect made below Python's
    socket module (as native code would, here a UDP connect, which sends no packet); loopback
    works."""
    guard = guarded(tmp_path)
    script = (
        "import _socket, socket, urllib.request\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=5).close()\n"
        "try:\n"
        "    urllib.request.urlopen('https://example.com/', timeout=5)\n"
        "except OSError as error:\n"
        "    print('refused', error)\n"
        "native = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)\n"
        "native.connect_ex(('192.0.2.1', 9))  # TEST-NET-1: documentation only, never routed\n"
    )
    result = subprocess.run(
        guard.command("probe", "-c", script), env=guard.env, capture_output=True, text=True
    )
    assert succeeded(result), explain(result)
    assert "refused" in result.stdout and "blocked by the test guard" in result.stdout
    assert guard.ran_in("-c")
    attempts = guard.attempts()
    python = [line for line in attempts if not line.startswith("native: ")]
    native = [line for line in attempts if line.startswith("native: ")]
    assert len(python) == 1 and "example.com" in python[0], attempts
    if strace_works():
        assert len(native) == 1 and "192.0.2.1" in native[0], attempts
        assert "127.0.0.1" in guard.trace_file("probe").read_text()  # seen, and not counted


def test_cli_ingest_search_and_draft_never_touch_the_network(
    tmp_path: Path, tiny_model: Path
) -> None:
    guard = guarded(tmp_path)

    ingest = run_cli(guard, "ingest", "ingest", *map(str, SAMPLE_PDFS))
    assert succeeded(ingest), explain(ingest)
    assert ingest.stdout.count("added: ") == len(SAMPLE_PDFS), ingest.stdout
    assert_nothing_attempted(guard, "`palimpsest ingest`", "ingest")

    search = run_cli(guard, "search", "search", "notice period for termination", "--json")
    assert succeeded(search), explain(search)
    hits = json.loads(search.stdout)
    assert hits and hits[0]["filename"].endswith(".pdf")
    assert_nothing_attempted(guard, "`palimpsest search`", "search")

    draft_args = ("--section", "Termination for convenience", "--model", str(tiny_model))
    settings = ("--steps", "4", "--block-tokens", "16", "--seed", "3", "--json")
    draft = run_cli(guard, "draft", "draft", INSTRUCTION, *draft_args, *settings)
    assert succeeded(draft), explain(draft)
    drafted = json.loads(draft.stdout)
    assert drafted["done"] and drafted["blocks"][0]["text"]
    assert drafted["blocks"][0]["sources"], "the drafted block cites no passage"
    assert_nothing_attempted(guard, "`palimpsest draft` with a local model folder", "draft")


def test_hub_model_offline_fails_fast_with_a_clear_error_and_asks_only_the_hub(
    tmp_path: Path,
) -> None:
    """The default model is a hub id. Not downloaded and offline, drafting asks the hub once (the
    short probe in engine/denoiser.py), is refused, and says how to provide a model."""
    guard = guarded(tmp_path)
    started = time.monotonic()
    result = run_cli(
        guard,
        "hub",
        "draft",
        INSTRUCTION,
        "--section",
        "Termination for convenience",
        "--model",
        DEFAULT_MODEL,
        timeout=CLI_TIMEOUT_S,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("error: Cannot load the model"), explain(result)
    assert "the Hugging Face hub cannot provide it" in result.stderr, explain(result)
    assert "--model /path/to/folder" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < HUB_HANG_GUARD_S, f"the offline failure took {elapsed:.0f} s"

    attempts = guard.attempts()
    hub = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    assert attempts, "the hub id was not looked up at all"
    assert all(f"('{hub}', " in line for line in attempts), "\n".join(attempts)
    # The model lookup only: no telemetry, no agent-harness list, nothing else of the hub's.
    assert all("model_info" in line for line in attempts), "\n".join(attempts)


# ---------------------------------------------------------------------------------------------
# The web app in a browser


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def stop_tree(process: subprocess.Popen) -> None:
    """Stop the app we started: through strace, end its child (strace then exits)."""
    if process.poll() is None:
        for child in _children(process.pid):
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        if not _children(process.pid):
            process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for child in _children(process.pid):
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait(timeout=30)


@contextmanager
def guarded_app(guard: Guarded) -> Iterator[AppServer]:
    """`python app.py --port P --library DIR` under the guard (and strace), until the block ends."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    library_dir, log_path, port = guard.root / "library", guard.root / "app.log", free_port()
    args = ("app.py", "--port", str(port), "--library", str(library_dir))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            guard.command("app", *args),
            cwd=REPO_ROOT,
            env=guard.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = AppServer(f"http://127.0.0.1:{port}/", process, log_path, library_dir)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with code {process.returncode}\n{server.log_tail()}")
            try:
                wait_for_http(server.url, timeout_s=3)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not serve within {STARTUP_S} s\n{server.log_tail()}")
        yield server
    finally:
        stop_tree(process)


def is_local_url(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in {"data", "blob", "about", "chrome", "chrome-extension"}:
        return True
    return parsed.hostname in {"127.0.0.1", "localhost", "::1"}


@pytest.mark.browser
def test_web_app_upload_and_search_never_touch_the_network(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    guard = guarded(tmp_path)
    external: list[str] = []
    with guarded_app(guard) as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=QUIET_CHROMIUM_ARGS, headless=True
            )
            context = browser.new_context(viewport={"width": 1366, "height": 1000})

            def record(request) -> None:
                if not is_local_url(request.url):
                    external.append(f"{request.resource_type} {request.url}")

            def offline(route) -> None:  # what an offline machine does to outside requests
                if is_local_url(route.request.url):
                    route.continue_()
                else:
                    route.abort("internetdisconnected")

            context.on("request", record)
            context.route("**/*", offline)
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            try:
                with explained(server, page):
                    page.goto(server.url, wait_until="domcontentloaded")
                    expect(page.locator("#documents-table")).to_be_visible()
                    file_input = page.locator("input[type=file][accept*='.pdf']")
                    expect(file_input).to_have_count(1)
                    file_input.set_input_files(str(SAMPLE_DIR / "nda.pdf"))
                    expect(page.locator("#upload-log textarea")).to_have_value(
                        re.compile(r"added: nda\.pdf"), timeout=WAIT_MS
                    )
                    page.locator("#search-box textarea, #search-box input").first.fill(
                        "trade secrets confidentiality period"
                    )
                    page.locator("#search-button").click()
                    expect(page.locator("#search-results")).to_contain_text(
                        "nda.pdf", timeout=WAIT_MS
                    )
                    page.wait_for_timeout(1000)  # for late requests (Gradio never idles)
                    save_screenshot(page, "no-network-search")
            finally:
                context.close()
                browser.close()
        alive = server.process.poll() is None
        log_tail = server.log_tail()
    assert alive, f"the app died during the test\n{log_tail}"

    assert_nothing_attempted(guard, "the web app (upload and search)", "app.py")
    assert not external, (
        "the page requested outside URLs (aborted here, as offline):\n" + "\n".join(external)
    )
