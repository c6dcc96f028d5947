"""bench/retrieval_eval.py's metrics on a hand-made case, and bench/evalset/questions.json's
spans against the page text the library extracts."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from engine import documents

ROOT = Path(__file__).resolve().parent.parent
EVALSET = ROOT / "bench" / "evalset"
CORPUS = ROOT.parent / "shared" / "corpus"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


metrics = _load("retrieval_metrics")


@dataclass(frozen=True)
class Hit:
    filename: str
    page_index: int
    char_start: int
    char_end: int


QUESTION = {"file": "a.pdf", "page": 2, "start": 100, "end": 140}


def test_rank_counts_the_first_hit_covering_half_the_answer() -> None:
    spans = metrics.answer_spans(QUESTION)
    hits = [
        Hit("b.pdf", 2, 0, 500),  # another file
        Hit("a.pdf", 3, 0, 500),  # another page
        Hit("a.pdf", 2, 125, 600),  # 15 of 40 characters: too little
        Hit("a.pdf", 2, 0, 120),  # 20 of 40: answers
    ]
    assert metrics.first_answering_rank(hits, spans) == 4
    assert metrics.first_answering_rank(hits[:3], spans) is None


def test_a_copy_in_another_file_answers_too() -> None:
    question = {**QUESTION, "also": [{"file": "copy.pdf", "page": 0, "start": 10, "end": 50}]}
    hits = [Hit("copy.pdf", 0, 0, 60)]
    assert metrics.first_answering_rank(hits, metrics.answer_spans(question)) == 1


def test_budget_reads_hits_in_order_and_stops_at_the_limit() -> None:
    spans = metrics.answer_spans(QUESTION)
    filler = Hit("b.pdf", 0, 0, 2000)
    answer = Hit("a.pdf", 2, 0, 1000)
    # 2000 + 2 separator characters leave 998: the answer (100-140) is read.
    assert metrics.within_budget([filler, answer], spans)
    # 2950 + 2 leave 48: only characters 0-48 of the answer's hit are read.
    assert not metrics.within_budget([Hit("b.pdf", 0, 0, 2950), answer], spans)
    # Two hits that each hold part of the answer hold it together.
    assert metrics.within_budget([Hit("a.pdf", 2, 0, 120), Hit("a.pdf", 2, 115, 200)], spans)
    assert not metrics.within_budget([Hit("a.pdf", 2, 0, 120)], spans)


def test_summary_of_recall_mrr_and_budget() -> None:
    summary = metrics.summarise([1, 3, None, 7], [True, True, False, False])
    assert summary == {
        "recall@1": 0.25,
        "recall@5": 0.5,
        "recall@10": 0.75,
        "mrr@10": round((1 + 1 / 3 + 1 / 7) / 4, 3),
        "in_budget": 0.5,
    }


def _questions() -> list[dict]:
    return json.loads((EVALSET / "questions.json").read_text(encoding="utf-8"))


def test_questions_file_is_well_formed() -> None:
    questions = _questions()
    sources = json.loads((EVALSET / "sources.json").read_text(encoding="utf-8"))["pdfs"]
    assert len(questions) >= 150
    assert len({q["id"] for q in questions}) == len(questions)
    assert len(sources) + 4 >= 40  # the PDFs of the manifest and the shared corpus
    for question in questions:
        assert question["question"].strip()
        assert 0 <= question["start"] < question["end"]
        assert question["answer"].strip() == question["answer"]
        assert len(question["answer"]) == question["end"] - question["start"]


def _pdf(name: str) -> Path | None:
    for folder in (EVALSET / "pdfs", CORPUS):
        if (folder / name).is_file():
            return folder / name
    return None


def test_every_span_lies_in_its_page_text(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (EVALSET / "pdfs").is_dir():
        pytest.skip("bench/evalset/pdfs is absent (python bench/evalset/fetch_pdfs.py)")
    # No question sits on a recognised page (OCR output varies between engine versions), so
    # text layers suffice and the test does not spend its time recognising scans.
    monkeypatch.setattr(documents, "needs_ocr", lambda page, text: False)
    spans: dict[str, list[dict]] = {}
    for question in _questions():
        for span in [question, *question.get("also", [])]:
            spans.setdefault(span["file"], []).append(span)
    checked = 0
    for name, wanted in sorted(spans.items()):
        path = _pdf(name)
        if path is None:
            continue  # a shared-corpus file on a machine without the corpus
        pages = documents.read_pdf(path, max_bytes=2**27, max_pages=5000).pages
        for span in wanted:
            text = pages[span["page"]].text
            assert span["end"] <= len(text), (name, span)
            if "answer" in span:
                assert text[span["start"] : span["end"]] == span["answer"], (name, span)
            checked += 1
    assert checked > 0
