"""The drafting CLI in real processes: resume equals the uninterrupted run, even after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile

import pytest
from conftest import REPO_ROOT, SAMPLE_DIR, cli_env
from drafting_fixtures import HEADINGS, INSTRUCTION


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-drafts")
    palimpsest("ingest", str(SAMPLE_DIR), library=folder, check=True)
    return folder


def palimpsest(*args: str, library, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO_ROOT,
        env=cli_env(library),
        capture_output=True,
        text=True,
        timeout=600,
        check=check,
    )


def draft_args(model, *extra: str) -> list[str]:
    sections = [arg for heading in HEADINGS for arg in ("--section", heading)]
    return [
        "draft",
        INSTRUCTION,
        *sections,
        "--model",
        str(model),
        "--steps",
        "8",
        "--block-tokens",
        "24",
        "--temperature",
        "0.9",
        "--seed",
        "21",
        "--json",
        *extra,
    ]


def canvases(library, draft_id: str) -> list:
    with sqlite3.connect(library / "drafts.sqlite3") as db:
        body = json.loads(
            db.execute("SELECT body FROM drafts WHERE draft_id = ?", (draft_id,)).fetchone()[0]
        )
    return [block["canvas"] for block in body["blocks"]], body["step"]


def test_draft_json_contract_and_resume_in_a_new_process(library_dir, tiny_model):
    whole = json.loads(palimpsest(*draft_args(tiny_model), library=library_dir, check=True).stdout)
    assert whole["done"] and whole["step"] == 8
    assert [b["heading"] for b in whole["blocks"]] == HEADINGS
    for block in whole["blocks"]:
        assert set(block) >= {"heading", "text", "step", "pins", "sources"}
        assert block["text"] and block["sources"]
        assert {"doc_id", "filename", "page_label", "char_start", "support"} <= set(
            block["sources"][0]
        )

    paused_run = palimpsest(
        *draft_args(tiny_model, "--stop-after", "3"), library=library_dir, check=True
    )
    paused = json.loads(paused_run.stdout)
    assert not paused["done"] and paused["step"] == 3
    assert "step 3:" in paused_run.stderr and "step 4:" not in paused_run.stderr
    resumed = json.loads(
        palimpsest("resume", paused["draft_id"], "--json", library=library_dir, check=True).stdout
    )
    assert resumed["done"] and resumed["step"] == 8
    assert [b["text"] for b in resumed["blocks"]] == [b["text"] for b in whole["blocks"]]
    assert canvases(library_dir, resumed["draft_id"]) == canvases(library_dir, whole["draft_id"])

    shown = json.loads(
        palimpsest("show", whole["draft_id"], "--json", library=library_dir, check=True).stdout
    )
    assert [b["text"] for b in shown["blocks"]] == [b["text"] for b in whole["blocks"]]


def test_kill_9_during_draft_then_resume_loses_nothing(library_dir, tiny_model):
    reference = json.loads(
        palimpsest(*draft_args(tiny_model), library=library_dir, check=True).stdout
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", *draft_args(tiny_model)],
        cwd=REPO_ROOT,
        env=cli_env(library_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    draft_id = process.stderr.readline().split()[-1]  # "draft <id>" comes before the first step
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            _, step = canvases(library_dir, draft_id)
        except (TypeError, sqlite3.Error):
            step = 0
        if step >= 2:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    _, saved_step = canvases(library_dir, draft_id)
    assert 2 <= saved_step < 8, "the kill did not land mid-draft"

    resumed = json.loads(
        palimpsest("resume", draft_id, "--json", library=library_dir, check=True).stdout
    )
    assert resumed["done"]
    assert canvases(library_dir, draft_id)[0] == canvases(library_dir, reference["draft_id"])[0]


COPIED = (
    "Either party may terminate this Agreement, or any Statement of Work, for convenience by "
    "giving the other party not less than ninety (90) days' written notice."
)  # from the services agreement's clause 5.1


def test_export_markdown_and_docx_with_footnotes(library_dir, tiny_model, tmp_path):
    """The tiny model's text is nonsense, so its sections are marked unsupported; the first
    section is edited to a sentence of a sample page, which gets its footnote."""
    draft = json.loads(palimpsest(*draft_args(tiny_model), library=library_dir, check=True).stdout)
    edit = ("edit", draft["draft_id"], "--block", "1", "--text", COPIED)
    palimpsest(*edit, library=library_dir, check=True)
    markdown = tmp_path / "draft.md"
    docx_path = tmp_path / "draft.docx"
    for fmt, path in (("md", markdown), ("docx", docx_path)):
        result = palimpsest(
            "export",
            draft["draft_id"],
            "--format",
            fmt,
            "-o",
            str(path),
            library=library_dir,
            check=True,
        )
        assert str(path) in result.stdout
    text = markdown.read_text()
    assert all(f"## {heading}" in text for heading in HEADINGS)
    assert "[^1]:" in text and "services-agreement.pdf, p. " in text
    assert "unsupported" in text.split(f"## {HEADINGS[1]}")[1]
    with zipfile.ZipFile(docx_path) as archive:
        footnotes = archive.read("word/footnotes.xml").decode()
    assert footnotes.count("<w:footnote ") >= 3  # two separators and the citation
    assert "services-agreement.pdf, p. " in footnotes


def test_missing_or_broken_model_gives_one_clear_message(library_dir, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    for model in (tmp_path / "no-such-model", broken):
        result = palimpsest(
            "draft", "Draft it", "--section", "One", "--model", str(model), library=library_dir
        )
        assert result.returncode != 0
        assert result.stderr.startswith("error: ")
        assert "--model /path/to/folder" in result.stderr
        assert "Traceback" not in result.stderr


def test_unknown_draft_is_a_clear_error(library_dir):
    result = palimpsest("show", "nope", library=library_dir)
    assert result.returncode != 0 and "no draft 'nope'" in result.stderr


def test_hundreds_of_sections_or_a_huge_instruction_is_one_clear_error(library_dir, tiny_model):
    many = [arg for i in range(300) for arg in ("--section", f"Section {i}")]
    huge = "an instruction that goes on " * 4_000  # 112 kB: below the kernel's argument limit
    for instruction, sections in ((INSTRUCTION, many), (huge, ["--section", "One"])):
        result = palimpsest(
            "draft", instruction, *sections, "--model", str(tiny_model), library=library_dir
        )
        assert result.returncode != 0
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert "split the document" in result.stderr or "characters; at most" in result.stderr


def test_a_hub_id_in_the_local_cache_drafts_offline_through_its_family(library_dir, tmp_path):
    """A LLaDA checkpoint laid out as the hub cache holds it (refs/main, snapshots/<commit>),
    named by its hub id: with HF_HUB_OFFLINE it loads from the cache, through the native LLaDA
    architecture, and drafts with LLaDA's recipe."""
    from llada_checkpoints import write_dense_checkpoint

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--GSAI-ML--LLaDA-8B-Instruct"
    write_dense_checkpoint(repo / "snapshots" / commit, max_sequence_length=1024)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = subprocess.run(
        [sys.executable, "-m", "engine", "draft", INSTRUCTION, "--section", HEADINGS[0]]
        + ["--model", "GSAI-ML/LLaDA-8B-Instruct", "--block-tokens", "40", "--json"],
        cwd=REPO_ROOT,
        env=cli_env(library_dir, HF_HUB_CACHE=str(tmp_path / "hub")),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    draft = json.loads(result.stdout)
    assert draft["done"]
    with sqlite3.connect(library_dir / "drafts.sqlite3") as db:
        body = json.loads(
            db.execute(
                "SELECT body FROM drafts WHERE draft_id = ?", (draft["draft_id"],)
            ).fetchone()[0]
        )
    settings = body["settings"]
    assert settings["model"] == "GSAI-ML/LLaDA-8B-Instruct"
    assert (settings["sub_block"], settings["steps"], settings["order"]) == (
        32,
        40,
        "low_confidence",
    )
    assert body["blocks"][0]["canvas"]["mask_id"] == 2  # the tiny config's mask_token_id
