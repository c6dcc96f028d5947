"""How long the commands take to start, each against `python -c pass` measured in the same run.

    python bench/startup.py [--library DIR] [--chunks 10000] [--repeats 3]

Prints JSON: the median wall time of `python -c pass`, `palimpsest --help`, `palimpsest docs`,
`show` and `export` (DOCX) of a finished two-section draft (drafted once with the demo model),
`accept` and `edit` of one of its sections (the model's tokenizer is loaded, not its weights), a
cold `palimpsest search` (a new process: imports, the query encoder, Chroma, the saved lexical
index) on a library of about `--chunks` chunks, and of `python app.py` from start to its address
answering (a starting page while the app is built), to its first page served and to `/ready` (its
models loaded: the embedding model and the default drafting model, the demo model unless
PALIMPSEST_MODEL names another), each with its ratio to `python -c pass`; and, in this process, the
time to open the saved lexical index against rebuilding it from SQLite.

The library is built once in `--library` (a temporary folder when not given) from the corpus PDFs
and the samples, grown to `--chunks` with copies under new document ids (as bench/ingest.py does),
and reused by later runs that name the same folder. The files are in the page cache after the first
run: "cold" is the process, not the disk.
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
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUERY = "how much notice to terminate for convenience"
EDIT = "Either party may terminate this Agreement on thirty days' written notice."


def wall_seconds(command: list[str], repeats: int) -> dict:
    """Median and every wall time of `command` run `repeats` times; it must succeed."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}


def answers(url: str, status: int | None = 200) -> bool:
    """Whether `url` answers with `status` now (`None`: with any status)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return status is None or response.status == status
    except urllib.error.HTTPError as error:
        return status is None or error.code == status
    except OSError:
        return False


def app_start_seconds(library_dir: Path, repeats: int, timeout_s: float = 300) -> dict:
    """Median and every time from starting `python app.py` to its address answering (the
    starting page, ui/boot.py), to its first page answering 200 (the app itself), and to
    `/ready` answering 200 (the embedding model and the default drafting model loaded)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", no_proxy="127.0.0.1,localhost")
    env.setdefault("PALIMPSEST_MODEL", "demo")
    answering, first_page, ready = [], [], []
    for _ in range(repeats):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "app.py", "--library", str(library_dir), "--port", str(port)]
        started = time.perf_counter()
        app = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        try:
            for path, status, times in (
                ("/", None, answering),
                ("/", 200, first_page),
                ("/ready", 200, ready),
            ):
                url = f"http://127.0.0.1:{port}{path}"
                while not answers(url, status):
                    if app.poll() is not None:
                        raise RuntimeError(f"the app exited with status {app.returncode}")
                    if time.perf_counter() - started > timeout_s:
                        raise TimeoutError(f"{url} did not answer within {timeout_s} s")
                    time.sleep(0.05)
                times.append(time.perf_counter() - started)
        finally:
            app.terminate()
            app.wait(timeout=30)
    return {
        name: {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}
        for name, runs in (
            ("app answers (starting page)", answering),
            ("app first page", first_page),
            ("app ready", ready),
        )
    }


def ready_chunks(library_dir: Path) -> int:
    from engine.catalog import open_catalog

    catalog = open_catalog(library_dir)
    return sum(record.chunks for record in catalog.documents()) if catalog else 0


def build_library(library_dir: Path, pdfs: list[Path], target_chunks: int) -> None:
    """Ingest `pdfs`, then grow the library with copies of their chunks to `target_chunks`."""
    from ingest import grow_library

    from engine.config import Settings
    from engine.library import Library

    library = Library(Settings(library_dir=library_dir))
    for outcome in library.ingest_many(pdfs):
        print(outcome.line(), file=sys.stderr, flush=True)
    grow_library(library, target_chunks, np.random.default_rng(0))
    library.refresh_index()


def demo_draft(library_dir: Path) -> str:
    """The id of a finished draft in the library, drafted once with the demo model."""
    from engine.draft_store import DraftStore

    store = DraftStore(library_dir / "drafts.sqlite3")
    finished = [d.draft_id for d in store.drafts() if d.done]
    if finished:
        return finished[0]
    command = [sys.executable, "-m", "engine", "draft", "Terms for a services agreement"]
    command += ["--section", "Termination", "--section", "Payment", "--model", "demo"]
    command += ["--library", str(library_dir), "--json"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["draft_id"]


def lexical_index_times(library_dir: Path, repeats: int) -> dict:
    """Opening the saved lexical index against rebuilding it, in milliseconds (medians)."""
    from engine.catalog import open_catalog
    from engine.lexical_store import LexicalStore

    catalog = open_catalog(library_dir)
    store = LexicalStore(library_dir / "lexical", catalog)
    opened, rebuilt = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        store.open()
        opened.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.rebuild()
        rebuilt.append(time.perf_counter() - started)
    return {
        "open_ms": round(1000 * statistics.median(opened), 1),
        "rebuild_and_save_ms": round(1000 * statistics.median(rebuilt), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, help="library folder, built once and reused")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        library_dir = args.library or Path(scratch) / "library"
        if ready_chunks(library_dir) < args.chunks:
            pdfs = sorted(args.corpus.glob("*.pdf")) + sorted((REPO / "sample_docs").glob("*.pdf"))
            build_library(library_dir, pdfs, args.chunks)
        cli = [sys.executable, "-m", "engine"]
        draft_id = demo_draft(library_dir)
        exported = Path(scratch) / "draft.docx"
        baseline = wall_seconds([sys.executable, "-c", "pass"], args.repeats)
        commands = {
            "--help": cli + ["--help"],
            "docs": cli + ["docs", "--library", str(library_dir)],
            "search (cold)": cli + ["search", QUERY, "--library", str(library_dir)],
            "show": cli + ["show", draft_id, "--library", str(library_dir)],
            "export": cli
            + ["export", draft_id, "--format", "docx", "-o", str(exported)]
            + ["--library", str(library_dir)],
            "accept": cli + ["accept", draft_id, "--block", "1", "--library", str(library_dir)],
            "edit": cli
            + ["edit", draft_id, "--block", "2", "--text", EDIT, "--library", str(library_dir)],
        }
        report: dict = {
            "library": {"folder": str(library_dir), "chunks": ready_chunks(library_dir)},
            "python -c pass": baseline,
        }
        timings = {
            f"palimpsest {name}": wall_seconds(c, args.repeats) for name, c in commands.items()
        }
        timings.update(app_start_seconds(library_dir, args.repeats))
        for name, timing in timings.items():
            timing["over_python"] = round(timing["median_s"] / baseline["median_s"], 1)
            report[name] = timing
        report["lexical_index"] = lexical_index_times(library_dir, args.repeats)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
