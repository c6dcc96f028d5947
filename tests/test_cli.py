"""The `palimpsest` CLI contract (DESIGN section 3), run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, SAMPLE_DIR, cli_env
from helpers import write

HIT_KEYS = {
    "chunk_id",
    "doc_id",
    "filename",
    "page_index",
    "page_label",
    "char_start",
    "char_end",
    "score",
    "text",
    "ocr_confidence",  # None unless the page was read by OCR
    "low_confidence",
}


def palimpsest(*args: str, library, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=REPO_ROOT,
        env=cli_env(library, **extra_env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ingest_search_docs_contract(tmp_path):
    library = tmp_path / "library"
    bad = write(tmp_path / "broken.pdf", b"definitely not a pdf")
    ingest = palimpsest("ingest", str(SAMPLE_DIR), str(bad), library=library)
    assert ingest.returncode == 0, ingest.stderr
    lines = ingest.stdout.strip().splitlines()
    assert len(lines) == 5
    assert sum(line.startswith("added: ") for line in lines) == 4
    assert "failed: broken.pdf: not a PDF" in ingest.stdout

    again = palimpsest("ingest", str(SAMPLE_DIR / "nda.pdf"), library=library)
    assert again.returncode == 0 and again.stdout.startswith("duplicate: nda.pdf")

    docs = json.loads(palimpsest("docs", "--json", library=library).stdout)
    assert sorted(d["filename"] for d in docs) == sorted(p.name for p in SAMPLE_DIR.glob("*.pdf"))
    nda = next(d for d in docs if d["filename"] == "nda.pdf")

    search = palimpsest(
        "search", "trade secrets stay confidential", "-k", "3", "--json", library=library
    )
    hits = json.loads(search.stdout)
    assert len(hits) == 3 and all(set(hit) == HIT_KEYS for hit in hits)
    assert hits[0]["filename"] == "nda.pdf"

    only = palimpsest(
        "search", "payment of invoices", "--doc", nda["doc_id"], "--json", library=library
    )
    assert {hit["doc_id"] for hit in json.loads(only.stdout)} == {nda["doc_id"]}

    plain = palimpsest("search", "subject access request", "-k", "1", library=library)
    assert plain.stdout.startswith("1. data-protection-act.pdf p.")


def test_ingest_exits_1_when_every_file_fails(tmp_path):
    bad = [write(tmp_path / f"bad{n}.pdf", b"%PDF-1.4 broken " * n) for n in (1, 2)]
    result = palimpsest("ingest", *map(str, bad), library=tmp_path / "library")
    assert result.returncode == 1
    assert result.stdout.count("failed: ") == 2


def test_library_from_flag_overrides_environment(tmp_path):
    chosen = tmp_path / "chosen"
    result = palimpsest(
        "ingest",
        str(SAMPLE_DIR / "nda.pdf"),
        "--library",
        str(chosen),
        library=tmp_path / "env-library",
    )
    assert result.returncode == 0
    assert (chosen / "library.sqlite3").exists()
    assert not (tmp_path / "env-library").exists()


def test_empty_library_docs_says_how_to_add(tmp_path):
    result = palimpsest("docs", library=tmp_path / "library")
    assert result.returncode == 0 and "palimpsest ingest" in result.stdout
