"""Commands that need no model start at once: `--help` and `docs` import none of the heavy
libraries, and `search`, `show` and `export` none of the neural ones (checked in a child process
through `sys.modules`)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import docx
from conftest import REPO_ROOT, cli_env

from engine.catalog import CATALOG_FILE, READY, Catalog
from engine.chunking import Chunk
from engine.documents import Page
from engine.draft_reading import DRAFTS_FILE

HEAVY = ("torch", "transformers", "chromadb", "sentence_transformers", "gradio")

# Runs the CLI in this interpreter, then prints which heavy modules it imported.
CHILD = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["palimpsest", *json.loads(sys.argv[1])]
try:
    runpy.run_module("engine", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"exit": code, "heavy": [m for m in heavy if m in sys.modules]}))
"""


def run_cli(*args: str, library) -> tuple[str, dict]:
    """The command's output and {"exit": status, "heavy": heavy modules it imported}."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args), json.dumps(HEAVY)],
        cwd=REPO_ROOT,
        env=cli_env(library),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output, _, report = result.stdout.rstrip("\n").rpartition("\n")
    return output, json.loads(report)


def test_help_imports_no_heavy_library(tmp_path):
    output, report = run_cli("--help", library=tmp_path / "library")
    assert "ingest" in output and "docs" in output
    assert report == {"exit": 0, "heavy": []}


def test_docs_reads_the_catalog_alone(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    catalog = Catalog(library / CATALOG_FILE)
    doc_id = "ab" * 32
    page = Page(0, "1", "Either party may terminate this Agreement.")
    chunk = Chunk(f"{doc_id[:16]}-p0-c0", doc_id, 0, "1", 0, 0, len(page.text), page.text)
    catalog.add_pending(doc_id, "contract.pdf", 1234, [page], [chunk])
    catalog.add_pending("cd" * 32, "half-written.pdf", 99, [], [])
    catalog.set_status(doc_id, READY)

    output, report = run_cli("docs", "--json", library=library)
    assert report == {"exit": 0, "heavy": []}
    (listed,) = json.loads(output)
    assert (listed["doc_id"], listed["filename"], listed["chunks"]) == (doc_id, "contract.pdf", 1)

    output, report = run_cli("docs", library=library)
    assert "contract.pdf" in output and "half-written" not in output
    assert report["heavy"] == []


def test_docs_of_a_missing_library_creates_nothing(tmp_path):
    output, report = run_cli("docs", library=tmp_path / "nowhere")
    assert "the library is empty" in output and report == {"exit": 0, "heavy": []}
    assert not (tmp_path / "nowhere").exists()


def test_search_embeds_its_query_without_torch(sample_library):
    """A cold search embeds the query in numpy and opens the saved lexical index: it needs
    Chroma, but never torch, transformers or sentence-transformers."""
    output, report = run_cli(
        "search",
        "--json",
        "how much notice to terminate for convenience",
        library=sample_library.root,
    )
    assert report["exit"] == 0
    assert report["heavy"] == ["chromadb"]
    hits = json.loads(output)
    assert hits and all(hit["filename"].endswith(".pdf") for hit in hits)


def test_show_and_export_read_a_stored_draft_without_its_model(workspace, drafter, draft, tmp_path):
    """A stored draft is shown and exported from its stored texts (no torch, no model), exactly
    as the workspace shows and exports the draft in memory."""
    library = workspace.settings.library_dir
    expected = workspace.to_json(drafter, draft)
    output, report = run_cli("show", draft.draft_id, "--json", library=library)
    assert report == {"exit": 0, "heavy": ["chromadb"]}
    assert json.loads(output) == expected

    output, report = run_cli(
        "export",
        draft.draft_id,
        "--format",
        "docx",
        "-o",
        str(tmp_path / "d.docx"),
        library=library,
    )
    assert report == {"exit": 0, "heavy": ["chromadb"]} and output == f"wrote {tmp_path / 'd.docx'}"
    text = "\n".join(p.text for p in docx.Document(tmp_path / "d.docx").paragraphs)
    assert all(block["text"] in text for block in expected["blocks"])


def test_a_draft_saved_without_its_texts_is_decoded_by_its_model(workspace, drafter, draft):
    """Drafts saved before the decoded texts were stored still show, decoded the old way."""
    library = workspace.settings.library_dir
    expected = workspace.to_json(drafter, draft)
    with sqlite3.connect(library / DRAFTS_FILE) as db:
        (raw,) = db.execute(
            "SELECT body FROM drafts WHERE draft_id = ?", (draft.draft_id,)
        ).fetchone()
        body = json.loads(raw)
        for block in body["blocks"]:
            del block["decoded"]
        db.execute(
            "UPDATE drafts SET body = ? WHERE draft_id = ?", (json.dumps(body), draft.draft_id)
        )
    assert workspace.drafts.reading(draft.draft_id) is None
    output, report = run_cli("show", draft.draft_id, "--json", library=library)
    assert report["exit"] == 0 and "torch" in report["heavy"]
    assert json.loads(output) == expected
