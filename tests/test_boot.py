"""The address answers while the app is built (ui/boot.py): a starting page (503) until then, the
real app after, with its lifespan run; a build that fails stops the server with status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager

from conftest import REPO_ROOT
from helpers import free_port
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from ui.boot import STARTING, Booting


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_starting_page_until_built_then_the_app_with_its_lifespan():
    import uvicorn

    release = threading.Event()
    lifespan_ran = []

    @asynccontextmanager
    async def lifespan(app):
        lifespan_ran.append("startup")
        yield {"greeting": "hello"}  # lifespan state, read by requests
        lifespan_ran.append("shutdown")

    def hello(request):
        return JSONResponse({"greeting": request.state.greeting})

    def build():
        release.wait(30)
        return Starlette(routes=[Route("/", hello)], lifespan=lifespan)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(None, port=port, log_level="warning"))
    server.config.app = Booting(build, stop=lambda: setattr(server, "should_exit", True))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started)
        status, page = fetch(base + "/")
        assert status == 503 and STARTING in page and 'http-equiv="refresh"' in page
        status, ready = fetch(base + "/ready")
        assert status == 503 and json.loads(ready) == {"ready": False, "message": STARTING}
        assert lifespan_ran == []

        release.set()
        wait_until(lambda: fetch(base + "/")[0] == 200)
        assert json.loads(fetch(base + "/")[1]) == {"greeting": "hello"}
        assert lifespan_ran == ["startup"]
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)
    assert lifespan_ran == ["startup", "shutdown"]


def test_a_build_that_fails_is_printed_and_stops_the_server_with_status_1(tmp_path):
    script = tmp_path / "broken_app.py"
    script.write_text(
        "from ui.boot import serve\n\n"
        "def broken():\n"
        "    raise RuntimeError('the interface could not be laid out')\n\n"
        f"serve(broken, '127.0.0.1', {free_port()})\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Palimpsest could not start" in result.stderr
    assert "the interface could not be laid out" in result.stderr
