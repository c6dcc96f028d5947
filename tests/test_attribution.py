"""Attribution names the page a text comes from, with the matched spans on both sides."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, SAMPLE_DIR, cli_env

from engine.attribution import (
    SUPPORTED_AT,
    attribute,
    attribute_sentences,
    matched_spans,
    split_sentences,
)

UNRELATED = "The striker scored twice in the second half to win the cup final."
PARAPHRASE = "The Customer must pay every valid invoice within thirty days of receiving it."


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

    text = f"Information that is already public is not confidential. {UNRELATED}"
    out = subprocess.run(
        [*run, "attribute", text, "--sentences", "--json", "-k", "1"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    public, football = json.loads(out.stdout)
    assert (public["start"], public["end"], football["end"]) == (0, 55, len(text))
    assert public["supported"] and not football["supported"] and football["citations"] == []
    (citation,) = public["citations"]
    assert citation["filename"] == "nda.pdf" and citation["support"] >= SUPPORTED_AT
    assert {"page_label", "quote", "spans"} <= set(citation)


# --- sentences --------------------------------------------------------------------------------


def test_split_sentences_keeps_legal_and_academic_abbreviations_inside():
    text = (
        "Under cl. 12.2 and s. 4(2) of the Act, notice is due. The Supplier, e.g. Northwind, "
        "pays within 30 days. Okafor et al. (2024) agree, as J. Smith did! Was it “final”? "
        "(b) Yes.\n\nA new paragraph without a full stop\n5.1 Termination. 5. Duration"
    )
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "Under cl. 12.2 and s. 4(2) of the Act, notice is due.",
        "The Supplier, e.g. Northwind, pays within 30 days.",
        "Okafor et al. (2024) agree, as J. Smith did!",
        "Was it “final”?",
        "(b) Yes.",
        "A new paragraph without a full stop\n5.1 Termination.",
        "5. Duration",
    ]
    assert split_sentences("  \n ") == []
    uncased = "the fee is due, e.g. monthly. the term ends. cl. 5 applies."  # an uncased model's
    assert [uncased[a:b] for a, b in split_sentences(uncased)] == [
        "the fee is due, e.g. monthly.",
        "the term ends.",
        "cl. 5 applies.",
    ]


def _page_sentence(library, filename: str, page_index: int, min_words: int = 12):
    record = next(r for r in library.documents() if r.filename == filename)
    page = library.page(record.doc_id, page_index)
    bounds = [(a, b) for a, b in split_sentences(page.text) if len(page.text[a:b].split()) >= 12]
    start, end = bounds[len(bounds) // 2]
    return record, page, page.text[start:end]


def test_a_sentence_copied_from_a_page_cites_that_page_with_the_exact_span(sample_library):
    for record in sample_library.documents():
        _, page, copied = _page_sentence(sample_library, record.filename, record.pages - 1)
        text = f"{UNRELATED} {copied}"
        unrelated, sentence = attribute_sentences(sample_library, text)
        assert not unrelated.supported
        assert (sentence.start, sentence.end) == (len(UNRELATED) + 1, len(text))
        assert sentence.supported and sentence.support >= SUPPORTED_AT
        best = sentence.citations[0]
        assert (best.hit.doc_id, best.hit.page_index) == (record.doc_id, record.pages - 1)
        assert page.text[best.quote_start : best.quote_end] == copied == best.quote()
        (span,) = best.spans
        assert text[span.text_start : span.text_end] == page.text[span.page_start : span.page_end]


def test_a_lightly_paraphrased_sentence_still_cites_the_right_page(sample_library):
    (sentence,) = attribute_sentences(sample_library, PARAPHRASE)
    assert sentence.supported
    best = sentence.citations[0]
    assert (best.hit.filename, best.hit.page_label) == ("services-agreement.pdf", "2")
    assert "invoice within thirty (30) days" in best.quote()


def test_a_sentence_unrelated_to_the_library_is_unsupported(sample_library):
    for text in (UNRELATED, "Preheat the oven and whisk the eggs with the sugar until pale."):
        (sentence,) = attribute_sentences(sample_library, text)
        assert not sentence.supported and sentence.citations == []
        assert sentence.support < SUPPORTED_AT
        assert sentence.to_json()["supported"] is False


def test_sentence_citations_stay_within_the_target_documents(sample_library):
    nda = next(r for r in sample_library.documents() if r.filename == "nda.pdf")
    (sentence,) = attribute_sentences(sample_library, PARAPHRASE, doc_ids=[nda.doc_id])
    assert all(c.hit.doc_id == nda.doc_id for c in sentence.citations)
