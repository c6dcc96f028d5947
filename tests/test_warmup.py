"""The models load in the background: the warm-up's states, and the app serving its page while a
drafting model that cannot load is reported at `/ready` instead of stopping it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from conftest import REPO_ROOT, cli_env
from helpers import free_port, wait_for_http

from engine.models import DEMO_MODEL, Denoisers
from engine.warmup import Warmup


def test_states_while_loading_then_ready_with_the_failure_listed():
    release = threading.Event()
    loaded = []

    def slow_load() -> None:
        release.wait(30)
        loaded.append("embedder")

    def broken_load() -> None:
        raise OSError("no such folder: /models/missing")

    warmup = Warmup([("the embedding model", slow_load), ("the drafting model x", broken_load)])
    before = warmup.state()
    assert not before.ready and before.message == "Loading the models…"
    warmup.start()
    deadline = time.monotonic() + 10
    while "embedding" not in warmup.state().message and time.monotonic() < deadline:
        time.sleep(0.01)
    loading = warmup.state()
    assert not loading.ready and loading.message.startswith("Loading the embedding model…")
    assert not warmup.wait(0.05)

    release.set()
    assert warmup.wait(10)
    done = warmup.state()
    assert done.ready and loaded == ["embedder"]
    assert done.message.startswith("Ready: loaded the embedding model (")
    assert done.failures == (
        "the drafting model x could not be loaded: no such folder: /models/missing",
    )
    assert done.to_json()["failures"] == list(done.failures)


def ready_report(url: str, timeout_s: float = 180) -> dict:
    """`/ready`'s JSON once it answers 200 (503 while loading)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            assert error.code == 503
            assert json.loads(error.read())["ready"] is False
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready within {timeout_s} s")


def test_the_app_serves_and_reports_a_drafting_model_that_cannot_load(tmp_path):
    missing = tmp_path / "no-such-model"
    port = free_port()
    env = cli_env(tmp_path / "library", PALIMPSEST_MODEL=str(missing))
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--library", str(tmp_path / "library")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout_s=180)
        report = ready_report(f"http://127.0.0.1:{port}/ready")
        assert report["ready"] is True
        assert "the embedding model" in report["message"]
        (failure,) = report["failures"]
        assert failure.startswith(f"the drafting model {missing} could not be loaded")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200  # still serving
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_a_drafting_model_not_downloaded_is_left_for_the_first_draft(tmp_path, monkeypatch):
    """Starting the app never downloads: a hub id missing from the local cache is deferred (a note,
    not a failure) without a request to the hub; a model at hand is loaded."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    asked_the_hub = []
    monkeypatch.setattr("engine.denoiser._probe_hub", lambda name: asked_the_hub.append(name))
    denoisers = Denoisers(tmp_path / "models")
    hub_id = "dllm-hub/ModernBERT-large-chat-v0.1"

    warmup = Warmup(
        [
            ("the drafting model demo", lambda: denoisers.preload(DEMO_MODEL)),
            (f"the drafting model {hub_id}", lambda: denoisers.preload(hub_id)),
        ]
    ).start()
    assert warmup.wait(120)
    state = warmup.state()
    assert state.ready and state.failures == ()
    assert state.message.startswith("Ready: loaded the drafting model demo (")
    assert state.notes == (f"{hub_id} is not downloaded yet: the first draft with it fetches it",)
    assert asked_the_hub == []
    assert state.to_json()["notes"] == list(state.notes)
