"""Attribution names the page a text comes from, with the matched spans on both sides."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, SAMPLE_DIR, cli_env

from engine.attribution import attribute, matched_spans


def test_text_copied_from_a_page_is_attributed_to_that_page_first(sample_library):
    for record in sample_library.documents():
        page_index = record.pages - 1
        page = sample_library.page(record.doc_id, page_index)
        sentences = [s for s in page.text.split(". ") if len(s.split()) > 8]
        copied = ". ".join(sentences[:2]) + "."
        (best, *_rest) = attribute(sample_library, copied, k=3)
        assert (best.hit.doc_id, best.hit.page_index) == (record.doc_id, page_index), copied
        assert best.spans, "a verbatim copy must report matched spans"
        longest = max(best.spans, key=lambda s: s.text_end - s.text_start)
        quoted = copied[longest.text_start : longest.text_end]
        assert page.text[longest.page_start : longest.page_end].lower() == quoted.lower()


def test_user_typed_paraphrase_still_finds_support_without_spans(sample_library):
    supports = attribute(
        sample_library,
        "Someone who wants to stop the contract early without any "
        "fault must warn the other side months ahead.",
        k=3,
    )
    assert supports and supports[0].hit.filename == "services-agreement.pdf"
    assert supports == sorted(supports, key=lambda s: -s.support)


def test_empty_text_has_no_support(sample_library):
    assert attribute(sample_library, "   ") == []


def test_matched_spans_are_word_runs_in_both_texts():
    text = "The Supplier shall invoice the Customer monthly in arrears, it says."
    chunk = "Under clause 5, the supplier shall invoice the customer monthly in arrears."
    ((a0, a1, b0, b1),) = matched_spans(text, chunk)
    assert text[a0:a1] == "The Supplier shall invoice the Customer monthly in arrears"
    assert chunk[b0:b1] == "the supplier shall invoice the customer monthly in arrears"


def test_attribute_cli_json(tmp_path):
    env = cli_env(tmp_path / "library")
    run = [sys.executable, "-m", "engine"]
    subprocess.run(
        [*run, "ingest", str(SAMPLE_DIR / "nda.pdf")],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*run, "attribute", "information that is already public", "--json"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    supports = json.loads(out.stdout)
    assert 1 <= len(supports) <= 3
    assert {"support", "spans", "doc_id", "page_label", "char_start"} <= set(supports[0])
