"""The block commands (pin, unpin, edit, rerun, retarget) in real processes: each changes one
block of a saved draft and prints it as `show` does; every refusal is one line and exit 2."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SAMPLE_DIR, cli_env

from engine.block_ops import DraftLeases

HEADINGS = ["Termination for convenience", "Termination for cause"]
DOCUMENTS = ["services-agreement.pdf", "nda.pdf"]  # retargeting needs a second document


def palimpsest(*args: str, library, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO_ROOT,
        env=cli_env(library),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def shown(*args: str, library) -> dict:
    return json.loads(palimpsest(*args, "--json", library=library).stdout)


def refused(*args: str, library) -> str:
    """The one line a refused command prints (exit 2, no traceback)."""
    result = palimpsest(*args, library=library, check=False)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr


def stored_blocks(library, draft_id: str) -> list[dict]:
    with sqlite3.connect(library / "drafts.sqlite3") as db:
        (body,) = db.execute("SELECT body FROM drafts WHERE draft_id = ?", (draft_id,)).fetchone()
    return json.loads(body)["blocks"]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("block-cli")
    palimpsest("ingest", *(str(SAMPLE_DIR / name) for name in DOCUMENTS), library=folder)
    return folder


@pytest.fixture(scope="module")
def draft(library, tiny_model) -> dict:
    """One finished two-block draft for the module (drafting costs a process): one test works on
    block 1, another on block 2, and each checks the other block is left as it found it."""
    sections = [arg for heading in HEADINGS for arg in ("--section", heading)]
    return shown(
        *["draft", "Draft the termination clauses.", *sections, "--model", str(tiny_model)],
        *["--steps", "4", "--block-tokens", "16", "--passages", "1"],
        library=library,
    )


def test_pin_edit_and_unpin_change_one_block_and_print_it(library, draft, tmp_path):
    draft_id = draft["draft_id"]
    other = stored_blocks(library, draft_id)[1]
    pinned = shown("pin", draft_id, "--block", "1", "--start", "0", "--end", "4", library=library)
    assert set(pinned) >= {"draft_id", "title", "step", "done", "blocks"}
    (pin,) = pinned["blocks"][0]["pins"]
    assert pin["start"] == 0 and pin["end"] >= 4
    assert pinned["blocks"][0]["text"] == draft["blocks"][0]["text"]  # pinning changes no text

    reason = refused("edit", draft_id, "--block", "1", "--text", "at will", library=library)
    assert "removes pinned text" in reason
    new_text = tmp_path / "block.txt"
    new_text.write_text(f"{pin['text']} and the parties agree\n")
    edited = shown("edit", draft_id, "--block", "1", "--file", str(new_text), library=library)
    assert edited["blocks"][0]["text"].endswith("the parties agree")
    assert [p["text"] for p in edited["blocks"][0]["pins"]] == [pin["text"]]

    span = [str(edited["blocks"][0]["pins"][0][key]) for key in ("start", "end")]
    unpinned = shown(
        "unpin", draft_id, "--block", "1", "--start", span[0], "--end", span[1], library=library
    )
    assert unpinned["blocks"][0]["pins"] == []
    assert stored_blocks(library, draft_id)[1] == other


def test_rerun_and_retarget_redraft_that_block_alone_in_the_same_process(library, draft):
    draft_id = draft["draft_id"]
    before = stored_blocks(library, draft_id)
    result = palimpsest("rerun", draft_id, "--block", "2", "--json", library=library)
    rerun = json.loads(result.stdout)
    assert rerun["done"]
    assert "redrafting block 2" in result.stderr and "[2] 1/4 " in result.stderr
    after = stored_blocks(library, draft_id)
    assert after[0] == before[0]
    assert after[1]["canvas"]["tokens"] != before[1]["canvas"]["tokens"]

    nda = hashlib.sha256((SAMPLE_DIR / "nda.pdf").read_bytes()).hexdigest()  # its doc_id
    prefix = nda[:12]  # as `docs` prints it
    retargeted = shown("retarget", draft_id, "--block", "2", "--doc", prefix, library=library)
    assert retargeted["blocks"][1]["targets"] == [nda]
    assert {s["doc_id"] for s in retargeted["blocks"][1]["sources"]} == {nda}
    assert {h["doc_id"] for h in stored_blocks(library, draft_id)[1]["evidence"]} == {nda}
    assert stored_blocks(library, draft_id)[0] == before[0]


def test_refusals_exit_2_with_one_line(library, draft):
    draft_id = draft["draft_id"]
    before = stored_blocks(library, draft_id)
    pin = ["--start", "0", "--end", "3"]
    assert "no draft 'nope'" in refused("pin", "nope", "--block", "1", *pin, library=library)
    assert "no block 3" in refused("rerun", draft_id, "--block", "3", library=library)
    outside = refused(
        "pin", draft_id, "--block", "1", "--start", "2", "--end", "9999", library=library
    )
    assert "outside the block's text" in outside
    with DraftLeases(library / "leases").hold(draft_id, "held by this test"):  # another process
        running = refused("edit", draft_id, "--block", "2", "--text", "by hand", library=library)
    assert "the draft is running: pause it" in running
    assert stored_blocks(library, draft_id) == before


def test_an_edit_is_a_tracked_change_until_accepted_or_rejected(library, draft):
    draft_id = draft["draft_id"]
    before = shown("accept", draft_id, "--block", "2", library=library)["blocks"][1]["text"]
    edited = shown(
        "edit", draft_id, "--block", "2", "--text", "either party may end it", library=library
    )
    assert edited["blocks"][1]["redline"] == before
    rejected = shown("reject", draft_id, "--block", "2", library=library)
    assert rejected["blocks"][1]["text"] == before and rejected["blocks"][1]["redline"] is None
    shown("edit", draft_id, "--block", "2", "--text", "either party may end it", library=library)
    accepted = shown("accept", draft_id, "--block", "2", library=library)
    assert accepted["blocks"][1]["redline"] is None
    assert accepted["blocks"][1]["text"] == "either party may end it"
    assert "no change to reject" in refused("reject", draft_id, "--block", "2", library=library)


def test_a_draft_can_follow_one_document(library, tiny_model):
    docs = json.loads(palimpsest("docs", "--json", library=library).stdout)
    nda = next(d["doc_id"] for d in docs if d["filename"] == "nda.pdf")
    followed = shown(
        *["draft", "Draft the confidentiality clause.", "--section", "Confidentiality"],
        *["--model", str(tiny_model), "--steps", "2", "--block-tokens", "8", "--passages", "2"],
        *["--follow", nda[:12]],
        library=library,
    )
    (block,) = followed["blocks"]
    assert block["targets"] == [nda]
    assert {source["filename"] for r in block["read"] for source in r["sources"]} == {"nda.pdf"}
