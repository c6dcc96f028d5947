"""Chroma server mode: the library's vectors live in a `chroma run` process, not on local disk.

The module starts one real server on a free loopback port, talks to it through the engine and
through a separate `chromadb.HttpClient`, and stops it by its PID at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import chromadb
import pytest
from conftest import SAMPLE_DIR
from helpers import free_port, wait_for_http

from engine.config import Settings
from engine.embeddings import Embedder
from engine.library import Library
from engine.vectors import VectorStoreError

STARTUP_S = 120  # the server starts in seconds; other sessions may be loading the CPU
UNREACHABLE_LIMIT_S = 30
NDA = SAMPLE_DIR / "nda.pdf"
SERVICES = SAMPLE_DIR / "services-agreement.pdf"
SERVICES_LABELS = ["i", "1", "2", "3", "4"]  # printed page labels of services-agreement.pdf


def chroma_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "chroma"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("chroma")


@dataclass
class ChromaServer:
    url: str
    port: int
    pid: int
    process: subprocess.Popen
    data_dir: Path
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    def client(self) -> chromadb.HttpClient:
        return chromadb.HttpClient(
            host="127.0.0.1",
            port=self.port,
            settings=chromadb.Settings(anonymized_telemetry=False),
        )


def stop_by_pid(pid: int, process: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the server's PID, wait for it, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    os.kill(pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    executable = chroma_executable()
    if executable is None:
        pytest.skip("the `chroma` CLI is not installed (it comes with `pip install chromadb`)")
    root = tmp_path_factory.mktemp("chroma-server")
    data_dir = root / "data"
    log_path = root / "chroma.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", no_proxy="127.0.0.1,localhost")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [executable, "run", "--path", str(data_dir), "--host", "127.0.0.1"]
            + ["--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = ChromaServer(url, port, process.pid, process, data_dir, log_path)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"`chroma run` exited with code {process.returncode}\n"
                    f"--- chroma log tail ---\n{server.log_tail()}"
                )
            try:
                wait_for_http(f"{url}/api/v2/heartbeat", timeout_s=3)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"`chroma run` did not answer its heartbeat within {STARTUP_S} s\n"
                        f"--- chroma log tail ---\n{server.log_tail()}"
                    )
        yield server
    finally:
        stop_by_pid(server.pid, process)


def test_library_on_chroma_server(
    chroma_server: ChromaServer, tmp_path: Path, embedder: Embedder
) -> None:
    library_dir = tmp_path / "lib"
    library = Library(
        Settings(library_dir=library_dir, chroma_url=chroma_server.url), embedder=embedder
    )
    outcomes = [library.ingest(NDA), library.ingest(SERVICES)]
    assert [o.status for o in outcomes] == ["added", "added"], [o.line() for o in outcomes]
    nda, services = outcomes
    total = nda.chunks + services.chunks
    assert nda.chunks > 0 and services.chunks > 0

    # The vectors are on the server: another client sees them, the local folder holds none.
    remote = chroma_server.client()
    name = library.vectors.collection.name
    collection = remote.get_collection(name)
    assert collection.count() == total, chroma_server.log_tail()
    assert len(collection.get(where={"doc_id": nda.doc_id}, include=[])["ids"]) == nda.chunks
    local_chroma = library_dir / "chroma"
    assert not local_chroma.exists() or not any(local_chroma.iterdir()), list(
        local_chroma.rglob("*")
    )
    assert chroma_server.data_dir.is_dir() and any(chroma_server.data_dir.iterdir())

    # Search goes through the server and hits carry the printed page labels.
    hits = library.search("termination for convenience notice", k=5)
    assert hits, "no hits from the server-backed library"
    assert {hit.filename for hit in hits} <= {"nda.pdf", "services-agreement.pdf"}
    assert all(hit.page_label for hit in hits)
    for hit in hits:
        if hit.doc_id == services.doc_id:
            assert hit.page_label == SERVICES_LABELS[hit.page_index], hit
    dense = library.search("termination for convenience notice", k=5, mode="dense")
    assert dense and all(hit.score > 0 for hit in dense)
    only_nda = library.search("confidential information", k=5, doc_ids=[nda.doc_id])
    assert only_nda and {hit.doc_id for hit in only_nda} == {nda.doc_id}

    # Deleting a document removes exactly its vectors from the server.
    assert library.delete(services.doc_id)
    assert collection.count() == nda.chunks
    assert library.vectors.count(services.doc_id) == 0
    after = library.search("termination for convenience notice", k=5)
    assert after and {hit.doc_id for hit in after} == {nda.doc_id}

    # A second Library on the same folder and server sees the same state (multi-process path).
    reopened = Library(
        Settings(library_dir=library_dir, chroma_url=chroma_server.url), embedder=embedder
    )
    assert [record.doc_id for record in reopened.documents()] == [nda.doc_id]
    assert reopened.vectors.count() == nda.chunks


def test_unreachable_chroma_server_fails_fast_and_clearly(
    tmp_path: Path, embedder: Embedder
) -> None:
    port = free_port()  # nothing listens here
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(VectorStoreError) as caught:
        Library(Settings(library_dir=tmp_path / "lib", chroma_url=url), embedder=embedder)
    elapsed = time.monotonic() - started
    assert elapsed < UNREACHABLE_LIMIT_S, f"took {elapsed:.1f} s to report an unreachable server"
    message = str(caught.value)
    assert url in message and "Chroma server" in message, message
    assert "\n" not in message.strip(), message
