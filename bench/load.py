"""Several sessions drafting through the running app at once while another one uploads PDFs.

    python bench/load.py [--sessions 4] [--steps 16] [--tokens 64] [--sections 3] [--url URL]
                         [--batch-drafts off|on|both]

Starts `python app.py` on a temp library with the demo model (or uses `--url`), and drives it over
HTTP with gradio_client, one `Client` per session (each has its own session, so its own
server-side `gr.State`), exactly through the events the page's buttons fire (found by the
elem_ids of the Start and Step buttons and the upload box, not by generated API names):

1. setup: one sample PDF is uploaded (so every draft has sources) and one untimed draft loads
   the model;
2. single: one session alone drafts `--baseline-drafts` drafts; the time between successive
   "Drafting… step k" updates it receives is the time per step;
3. load: `--sessions` sessions draft at the same time, each with its own instruction, headings
   and seed, draft after draft until the upload session, started with them, has uploaded the
   other sample PDFs and the real papers of ../shared/corpus (when present) in one request.

Every draft is checked: it streamed to "Done.", every block finished, the headings it shows are
the ones its session sent (and no other's), the session's server-side state still holds it (the
Step button re-renders that draft), and the Drafts table has exactly one draft with its
instruction as title, done, with a draft id no other draft has. Prints JSON: errors (must be
empty), the cross-talk and completion checks, p50/p95 time per step alone and under load and
their ratio, and the upload's throughput under load.

Caveats: a step's time is the gap between two updates as the client receives them, so it
includes rendering, transport and waiting for the CPU, and two updates flushed together show as
one near-zero gap followed by a double one; the clients run on the same machine as the app; with
the demo model a step costs little besides the app's own work, and every `refresh_every`-th step
(4 by default) also re-runs retrieval, which makes the distribution bimodal.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "sample_docs"
CORPUS_DIR = ROOT.parent / "shared" / "corpus"
SEED_DOCUMENT = SAMPLE_DIR / "services-agreement.pdf"  # in the library before any timing
STARTUP_S = 300  # torch, the embedding model and Gradio on a busy 2-core machine
DRAFT_S = 600  # one draft under load, as a hang guard only
TOPICS = ["Termination", "Confidentiality", "Liability", "Payment", "Data", "Notices"]
SECTION = re.compile(  # a section's heading in the document view (ui/document_view.py)
    r'<span class="doc-number">\d+</span> (.*?)<span class="doc-meta"[^>]*>(.*?)</span>'
)
STEP_STATUS = re.compile(r"Drafting… step (\d+)")
UPLOAD_LINE = re.compile(r"^(added|duplicate|failed): (.+?): (.*)$")
ADDED_COUNTS = re.compile(r"(\d+) pages, (\d+) chunks")


# -- the app ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_env(**extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        ANONYMIZED_TELEMETRY="False",
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def running_app(root: Path, model: str = "demo", batched: bool = False) -> Iterator[str]:
    """`python app.py` on a free port with the library `root/library`; yields its URL. `batched`:
    concurrent drafts' steps share forward passes (PALIMPSEST_BATCH_DRAFTS)."""
    os.environ.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = root / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--library", str(root / "library")],
            cwd=ROOT,
            env=local_env(PALIMPSEST_MODEL=model, PALIMPSEST_BATCH_DRAFTS="1" if batched else "0"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=3):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not serve {url} in {STARTUP_S} s") from None
                time.sleep(0.3)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


# -- one session: the app's events, found by what fires them -------------------------------------


class Session:
    """One browser-less session of the app: its own gradio_client `Client` (session hash)."""

    def __init__(self, url: str):
        self.client = Client(url, verbose=False)
        config = self.client.config
        components = {c["id"]: c for c in config["components"]}
        self._elem = {cid: c.get("props", {}).get("elem_id") for cid, c in components.items()}
        self._components = components
        ids = {elem: cid for cid, elem in self._elem.items() if elem}
        self.start = self._triggered_by(ids["start"], "click")
        self.step = self._triggered_by(ids["step"], "click")
        uploads = [c["id"] for c in config["components"] if c["type"] == "file"]
        self.upload = next(
            dep["id"]
            for dep in config["dependencies"]
            for target, event in dep["targets"]
            if event == "upload" and target in uploads and ids["upload-log"] in dep["outputs"]
        )
        self.drafts_table = next(
            dep["id"]
            for dep in config["dependencies"]
            if dep["outputs"] == [ids["drafts-table"]] and not dep["inputs"]
        )

    def _triggered_by(self, component: int, event: str) -> int:
        for dep in self.client.config["dependencies"]:
            if [component, event] in [list(target) for target in dep["targets"]]:
                return dep["id"]
        raise LookupError(f"no event {event} on component {component}")

    def _named(self, fn_index: int, values: tuple | list) -> dict:
        """An endpoint's returned values by the elem_id (else label) of their components."""
        dependency = self.client.endpoints[fn_index].dependency
        kinds = self.client.endpoints[fn_index].output_component_types
        shown = [
            cid for cid, kind in zip(dependency["outputs"], kinds, strict=True) if not kind.skip
        ]
        if not isinstance(values, tuple | list) or len(shown) == 1:
            values = [values]
        names = [self._elem[cid] or self._components[cid]["props"].get("label") for cid in shown]
        return dict(zip(names, values, strict=True))

    def start_args(self, instruction: str, headings: list[str], spec: DraftSpec) -> list:
        """The Start button's inputs: the given ones, the rest at the screen's defaults."""
        endpoint = self.client.endpoints[self.start]
        kinds = endpoint.input_component_types
        given = {
            "instruction": instruction,
            "sections": "\n".join(headings),
            "model": spec.model,
            "Steps per section": spec.steps,
            "Tokens per section": spec.tokens,
            "Seed": spec.seed,
        }
        args = []
        for cid, kind in zip(endpoint.dependency["inputs"], kinds, strict=True):
            if kind.skip:
                continue
            props = self._components[cid]["props"]
            key = self._elem[cid] if self._elem[cid] in given else props.get("label")
            args.append(given.get(key, props.get("value")))
        return args

    def draft(self, spec: DraftSpec) -> DraftRun:
        """Press Start with `spec` and follow the stream to its end; then press Step, which
        re-renders whichever draft this session's server-side state holds."""
        run = DraftRun(spec)
        began = time.perf_counter()
        job = self.client.submit(
            *self.start_args(spec.instruction, spec.headings, spec), fn_index=self.start
        )
        arrivals: list[tuple[int, float]] = []
        last: dict = {}
        for values in job:
            now = time.perf_counter()
            last = self._named(self.start, values)
            match = STEP_STATUS.search(str(last.get("draft-status") or ""))
            if match:
                arrivals.append((int(match.group(1)), now))
        job.result(timeout=DRAFT_S)  # raises what the app raised, if anything
        run.seconds = time.perf_counter() - began
        if arrivals:
            run.first_step_s = arrivals[0][1] - began
        pairs = zip(arrivals, arrivals[1:], strict=False)
        run.step_s = [b - a for (k, a), (m, b) in pairs if m == k + 1]
        run.steps_seen = [k for k, _ in arrivals]
        run.status = str(last.get("draft-status") or "")
        run.headers = self._headers(last)
        run.state_headers = self._headers(
            self._named(self.step, self.client.predict(fn_index=self.step))
        )
        return run

    def _headers(self, named: dict) -> list[tuple[str, str]]:
        """(heading, its step line) of every section the document shows."""
        return [
            (html.unescape(heading), html.unescape(meta))
            for heading, meta in SECTION.findall(str(named.get("document") or ""))
        ]

    def upload_pdfs(self, paths: list[Path]) -> dict:
        """Upload `paths` in one request (as one drop of several files); what the log says."""
        began = time.perf_counter()
        values = self.client.predict([handle_file(str(p)) for p in paths], fn_index=self.upload)
        seconds = time.perf_counter() - began
        log = str(self._named(self.upload, values)["upload-log"] or "")
        outcomes = [m.groups() for m in map(UPLOAD_LINE.match, log.splitlines()) if m]
        counts = [ADDED_COUNTS.search(note) for status, _, note in outcomes if status == "added"]
        added = {name for status, name, _ in outcomes if status == "added"}
        return {
            "files": len(paths),
            "added": len(added),
            "duplicate": sum(status == "duplicate" for status, _, _ in outcomes),
            "failed": [f"{name}: {note}" for status, name, note in outcomes if status == "failed"],
            "unreported": sorted({p.name for p in paths} - {name for _, name, _ in outcomes}),
            "pages": sum(int(c.group(1)) for c in counts if c),
            "chunks": sum(int(c.group(2)) for c in counts if c),
            "megabytes": round(sum(p.stat().st_size for p in paths if p.name in added) / 2**20, 2),
            "seconds": round(seconds, 2),
        }

    def saved_drafts(self) -> list[dict]:
        """The Drafts table: title, step, done and id of every saved draft."""
        table = self._named(self.drafts_table, self.client.predict(fn_index=self.drafts_table))
        value = next(iter(table.values()))
        headers = [h.lower() for h in value["headers"]]
        return [dict(zip(headers, row, strict=False)) for row in value["data"]]


@dataclass
class DraftSpec:
    session: str
    number: int
    steps: int
    tokens: int
    sections: int
    model: str

    @property
    def tag(self) -> str:
        return f"{self.session}d{self.number}"

    @property
    def seed(self) -> int:
        return zlib.crc32(self.tag.encode()) % 100_000

    @property
    def instruction(self) -> str:
        return f"Draft {self.tag}: the clauses of the agreement of session {self.session}."

    @property
    def headings(self) -> list[str]:
        topics = TOPICS[self.number % len(TOPICS) :] + TOPICS[: self.number % len(TOPICS)]
        return [f"{topics[i % len(topics)]} {self.tag} part {i + 1}" for i in range(self.sections)]


@dataclass
class DraftRun:
    spec: DraftSpec
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    state_headers: list[tuple[str, str]] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    steps_seen: list[int] = field(default_factory=list)
    first_step_s: float | None = None
    seconds: float = 0.0

    def problems(self) -> list[str]:
        """Why this draft is not complete and its own, if it is not."""
        spec, found = self.spec, []
        if not self.status.startswith("Done."):
            found.append(f"ended with status {self.status!r}")
        if self.steps_seen != list(range(1, spec.steps + 1)):
            found.append(f"streamed steps {self.steps_seen}, not 1..{spec.steps}")
        for shown, where in ((self.headers, "stream"), (self.state_headers, "session state")):
            titles = [heading for heading, _ in shown]
            if titles != spec.headings:
                found.append(f"{where} shows blocks {titles}, not {spec.headings}")
            done = f"step {spec.steps}/{spec.steps} · done"
            if not all(done in meta for _, meta in shown):
                found.append(f"{where}: not every block is done: {shown}")
        return [f"{spec.tag}: {p}" for p in found]


# -- the measurement -------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ms = np.asarray(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def draft_series(
    session: Session,
    name: str,
    settings: dict,
    at_least: int,
    keep_going: Callable[[], bool],
    errors: list[str],
    limit: int,
) -> list[DraftRun]:
    """Drafts one after another in one session: `at_least` of them, and on while `keep_going`."""
    runs: list[DraftRun] = []
    while len(runs) < limit and (len(runs) < at_least or keep_going()):
        spec = DraftSpec(name, len(runs), **settings)
        try:
            runs.append(session.draft(spec))
        except Exception as error:  # every failure is a result to report
            errors.append(f"{spec.tag}: {type(error).__name__}: {error}")
            traceback.print_exc(file=sys.stderr)
            break
    return runs


def run_load(
    url: str,
    sessions: int = 4,
    steps: int = 16,
    tokens: int = 64,
    sections: int = 3,
    model: str = "demo",
    baseline_drafts: int = 3,
    rounds: int = 1,
    max_rounds: int = 100,
    uploads: list[Path] | None = None,
    setup_upload: Path | None = SEED_DOCUMENT,
) -> dict:
    """Measure the running app at `url`; see the module docstring. Returns the JSON report."""
    settings = {"steps": steps, "tokens": tokens, "sections": sections, "model": model}
    errors: list[str] = []
    began = time.perf_counter()
    solo = Session(url)
    if setup_upload is not None:
        setup = solo.upload_pdfs([setup_upload])
        errors += [f"setup upload: {failure}" for failure in setup["failed"]]
    warm_up = draft_series(solo, "warm", settings, 1, lambda: False, errors, 1)
    single = draft_series(solo, "solo", settings, baseline_drafts, lambda: False, errors, 1000)

    uploader = Session(url)
    drafters = [Session(url) for _ in range(sessions)]  # each its own session hash
    upload_done = threading.Event()
    upload: dict = {}
    per_session: list[list[DraftRun]] = [[] for _ in drafters]
    gate = threading.Barrier(sessions + 1)

    def upload_job() -> None:
        try:
            gate.wait()
            upload.update(uploader.upload_pdfs(list(uploads or [])))
            errors.extend(f"upload: {failure}" for failure in upload["failed"])
            errors.extend(f"upload: {name} not reported" for name in upload["unreported"])
        except Exception as error:
            errors.append(f"upload: {type(error).__name__}: {error}")
        finally:
            upload_done.set()

    def session_job(number: int) -> None:
        gate.wait()
        per_session[number] = draft_series(
            drafters[number],
            f"s{number}",
            settings,
            rounds,
            lambda: not upload_done.is_set(),
            errors,
            max_rounds,
        )

    load_began = time.perf_counter()
    threads = [threading.Thread(target=upload_job)]
    threads += [threading.Thread(target=session_job, args=(n,)) for n in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load_s = time.perf_counter() - load_began

    loaded = [run for runs in per_session for run in runs]
    everything = warm_up + single + loaded
    problems = [problem for run in everything for problem in run.problems()]
    saved = solo.saved_drafts()
    ids: dict[str, list[str]] = {}
    for row in saved:
        ids.setdefault(str(row.get("title")), []).append(str(row.get("id")))
    for run in everything:
        rows = [r for r in saved if r.get("title") == run.spec.instruction]
        if len(rows) != 1:
            problems.append(f"{run.spec.tag}: {len(rows)} saved drafts titled as its instruction")
        elif rows[0].get("done") != "yes" or int(rows[0].get("step", -1)) != steps:
            problems.append(f"{run.spec.tag}: saved as {rows[0]}")
    all_ids = [row.get("id") for row in saved]
    unique_ids = len(all_ids) == len(set(all_ids))
    expected_drafts = 1 + baseline_drafts + sum(max(rounds, len(runs)) for runs in per_session)
    alone = percentiles([s for run in single for s in run.step_s])
    under_load = percentiles([s for run in loaded for s in run.step_s])
    upload_s = upload.get("seconds") or 0.0
    return {
        "settings": {**settings, "sessions": sessions, "url": url},
        "errors": errors,
        "drafts": {
            "expected": expected_drafts,
            "finished": len(everything),
            "single": len(single),
            "under_load": len(loaded),
            "per_session": [len(runs) for runs in per_session],
            "all_complete": len(everything) == expected_drafts
            and not any(run.problems() for run in everything),
        },
        "crosstalk": {"ok": not problems and unique_ids, "problems": problems},
        "draft_ids_unique": unique_ids,
        "time_per_step": {
            "single": alone,
            "under_load": under_load,
            "ratio_p50": _ratio(under_load, alone, "p50_ms"),
            "ratio_p95": _ratio(under_load, alone, "p95_ms"),
            "first_step_single": percentiles([r.first_step_s for r in single if r.first_step_s]),
            "first_step_under_load": percentiles(
                [r.first_step_s for r in loaded if r.first_step_s]
            ),
        },
        "upload_under_load": {
            **upload,
            "pages_per_s": round(upload.get("pages", 0) / upload_s, 2) if upload_s else None,
            "chunks_per_s": round(upload.get("chunks", 0) / upload_s, 2) if upload_s else None,
            "mb_per_s": round(upload.get("megabytes", 0) / upload_s, 3) if upload_s else None,
        },
        "seconds": {"load_phase": round(load_s, 1), "total": round(time.perf_counter() - began, 1)},
    }


def _ratio(loaded: dict, alone: dict, key: str) -> float | None:
    if key not in loaded or key not in alone or not alone[key]:
        return None
    return round(loaded[key] / alone[key], 2)


def default_uploads(with_corpus: bool = True) -> list[Path]:
    """The sample PDFs not uploaded at setup, and the real papers when they are present."""
    samples = [p for p in sorted(SAMPLE_DIR.glob("*.pdf")) if p != SEED_DOCUMENT]
    corpus = sorted(CORPUS_DIR.glob("*.pdf")) if with_corpus and CORPUS_DIR.is_dir() else []
    return samples + corpus


MODES = ("off", "on", "both")


def load_run(model: str, batched: bool, options: dict) -> dict:
    """One `run_load` against a fresh app on a temporary library."""
    with tempfile.TemporaryDirectory(prefix="palimpsest-load-") as folder:
        with running_app(Path(folder), model, batched) as url:
            return run_load(url, **options) | {"batched": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4, help="simultaneous drafting sessions")
    parser.add_argument("--steps", type=int, default=16, help="denoising steps per block")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per block")
    parser.add_argument("--sections", type=int, default=3, help="blocks per draft")
    parser.add_argument(
        "--baseline-drafts", type=int, default=3, help="drafts of the session alone"
    )
    parser.add_argument("--rounds", type=int, default=1, help="drafts per session at least")
    parser.add_argument("--model", default="demo", help="the model the drafts name")
    parser.add_argument("--no-corpus", action="store_true", help="upload only the samples")
    parser.add_argument("--url", help="an app already running (else one is started)")
    parser.add_argument(
        "--batch-drafts",
        choices=MODES,
        default="off",
        help="drafts take turns (off), share forward passes (on), or one run of each (both)",
    )
    args = parser.parse_args()
    options = {
        "sessions": args.sessions,
        "steps": args.steps,
        "tokens": args.tokens,
        "sections": args.sections,
        "model": args.model,
        "baseline_drafts": args.baseline_drafts,
        "rounds": args.rounds,
        "uploads": default_uploads(not args.no_corpus),
    }
    if args.url:
        report = run_load(args.url, **options)
    elif args.batch_drafts != "both":
        report = load_run(args.model, args.batch_drafts == "on", options)
    else:
        turns = load_run(args.model, False, options)
        batched = load_run(args.model, True, options)
        report = {
            "taking turns": turns,
            "batched": batched,
            "batched over turns": {
                key: _ratio(
                    batched["time_per_step"]["under_load"],
                    turns["time_per_step"]["under_load"],
                    key,
                )
                for key in ("p50_ms", "p95_ms")
            },
        }
    report["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
