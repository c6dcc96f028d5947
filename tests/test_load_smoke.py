"""bench/load.py's code path, small: 4 sessions draft through `python app.py` at once
(gradio_client, one session each) while a fifth uploads the sample PDFs. No errors, no cross-talk
between the sessions, every draft complete; no timing is asserted (the machine is shared)."""

from __future__ import annotations

import importlib.util
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

BENCH = REPO_ROOT / "bench" / "load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(400)  # a hang guard: it takes well under 90 s on a quiet 2-core machine
@pytest.mark.parametrize("batched", [False, True], ids=["taking-turns", "batched"])
def test_four_sessions_draft_while_a_fifth_uploads(tmp_path: Path, batched: bool) -> None:
    """With `batched`, the sessions' steps share forward passes (engine/step_batcher.py): each
    draft must still get its own rows back."""
    bench = load_bench()
    uploads = bench.default_uploads(with_corpus=False)
    with bench.running_app(tmp_path, batched=batched) as url:
        report = bench.run_load(
            url,
            sessions=4,
            steps=4,
            tokens=16,
            sections=2,
            baseline_drafts=1,
            rounds=1,
            uploads=uploads,
        )
    app_log = (tmp_path / "app.log").read_text(errors="replace")[-3000:]
    explained = f"{json.dumps(report, indent=1)}\n--- app log tail ---\n{app_log}"
    assert report["errors"] == [], explained
    assert report["crosstalk"] == {"ok": True, "problems": []}, explained
    assert report["draft_ids_unique"], explained
    drafts = report["drafts"]
    assert drafts["all_complete"], explained
    assert len(drafts["per_session"]) == 4 and min(drafts["per_session"]) >= 1, explained
    assert drafts["finished"] == drafts["expected"] == 2 + sum(drafts["per_session"]), explained
    upload = report["upload_under_load"]
    assert upload["added"] == len(uploads) and upload["failed"] == [], explained
    assert report["time_per_step"]["under_load"]["n"] > 0, explained


@pytest.mark.timeout(400)
def test_two_sessions_upload_the_same_pdf_at_once(tmp_path: Path) -> None:
    bench = load_bench()
    pdf = bench.SAMPLE_DIR / "nda.pdf"
    with bench.running_app(tmp_path) as url:
        sessions = [bench.Session(url), bench.Session(url)]
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda session: session.upload_pdfs([pdf]), sessions))
    assert [o["failed"] for o in outcomes] == [[], []], outcomes
    assert sorted((o["added"], o["duplicate"]) for o in outcomes) == [(0, 1), (1, 0)], outcomes
