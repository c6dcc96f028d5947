"""Sentence citations on real documents: does "supported" mean something?

    python bench/attribution_eval.py --library DIR [--thresholds 0.3 0.38 0.45 0.5]

The library must hold the evaluation PDFs (`python bench/retrieval_eval.py --library DIR` builds
it). Each sentence below is attributed as a draft's sentence is (`attribute_sentences`):
- `copied`: for each evaluation question, the sentence of its page that holds the answer,
  attributed against the whole library. It should be supported, and cited on the answer's page
  with a quote that covers the answer ("right passage");
- `paraphrased`: 24 of those sentences reworded by hand as a drafter would write them
  (bench/evalset/paraphrases.json: other words, the same claim and figures), attributed against
  the whole library: they should be supported, on the answer's page;
- `source withheld`: the copied sentences, attributed against every document but those holding the
  answer. What supports them now is another document: a same-topic distractor that says something
  close, or a false support;
- `unrelated`: sentences of the sample contracts and statute (fictional, written for this
  project, on topics the evaluation library does not cover). None should be supported.

The threshold was set on the sample library (engine/attribution.py, `SUPPORTED_AT`); this checks it
on 48 real PDFs it never saw. Prints JSON: per group, how many sentences, the share supported at
each threshold, and the support score's percentiles; for `copied`, the share cited on the right
page and with the right passage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.attribution import SUPPORTED_AT, SentenceSupport, attribute_sentences, split_sentences
from engine.config import Settings
from engine.documents import parse_pdf
from engine.library import Library

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "sample_docs"
UNRELATED_SAMPLES = ("nda.pdf", "services-agreement.pdf", "data-protection-act.pdf")
MIN_WORDS = 6  # shorter "sentences" are headings and list labels, not claims


def answer_sentence(page_text: str, start: int, end: int) -> tuple[int, int] | None:
    """The page's sentence that overlaps the answer span most."""
    best, overlap = None, 0
    for a, b in split_sentences(page_text):
        shared = min(b, end) - max(a, start)
        if shared > overlap:
            best, overlap = (a, b), shared
    return best


def claims(library: Library, questions: list[dict]) -> list[dict]:
    """Each question's answer sentence, where its page is in the library."""
    by_name = {record.filename: record.doc_id for record in library.documents()}
    found = []
    for question in questions:
        doc_id = by_name.get(question["file"])
        page = library.page(doc_id, question["page"]) if doc_id else None
        bounds = page and answer_sentence(page.text, question["start"], question["end"])
        if not bounds or len(page.text[bounds[0] : bounds[1]].split()) < MIN_WORDS:
            continue
        holders = {doc_id} | {
            by_name[a["file"]] for a in question.get("also", []) if a["file"] in by_name
        }
        found.append(
            {
                "id": question["id"],
                "text": page.text[bounds[0] : bounds[1]],
                "doc_id": doc_id,
                "page": question["page"],
                "answer": (question["start"], question["end"]),
                "holders": holders,
            }
        )
    return found


def unrelated_sentences() -> list[str]:
    sentences = []
    for name in UNRELATED_SAMPLES:
        document = parse_pdf((SAMPLES / name).read_bytes(), filename=name, max_pages=50)
        for page in document.pages:
            sentences += [
                page.text[a:b]
                for a, b in split_sentences(page.text)
                if len(page.text[a:b].split()) >= MIN_WORDS
            ]
    return sentences


def best_support(library: Library, sentence: str, doc_ids: list[str] | None) -> SentenceSupport:
    """The sentence as one unit, even where the splitter would cut it (a claim is one sentence)."""
    results = attribute_sentences(library, sentence, k=3, doc_ids=doc_ids)
    return max(results, key=lambda s: s.support)


def summary(supports: list[float], thresholds: list[float]) -> dict:
    scores = np.array(supports)
    return {
        "n": len(scores),
        "supported": {f"{t:g}": round(float(np.mean(scores >= t)), 3) for t in thresholds},
        "support_p10_p50_p90": [round(float(np.percentile(scores, p)), 3) for p in (10, 50, 90)],
    }


def right_passage(support: SentenceSupport, claim: dict) -> tuple[bool, bool]:
    """Whether a citation is on the answer's page, and whether its quote covers the answer."""
    on_page = [
        c
        for c in support.citations
        if c.hit.doc_id == claim["doc_id"] and c.hit.page_index == claim["page"]
    ]
    start, end = claim["answer"]
    covering = [c for c in on_page if c.quote_start < end and c.quote_end > start]
    return bool(on_page), bool(covering)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--questions", type=Path, default=HERE / "evalset" / "questions.json")
    parser.add_argument("--paraphrases", type=Path, default=HERE / "evalset" / "paraphrases.json")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.3, 0.38, 0.45, 0.5])
    args = parser.parse_args()
    thresholds = sorted({*args.thresholds, SUPPORTED_AT})
    library = Library(Settings(library_dir=args.library))
    everyone = [record.doc_id for record in library.documents()]
    questions = json.loads(args.questions.read_text(encoding="utf-8"))

    copied, withheld, pages, passages = [], [], 0, 0
    found = claims(library, questions)
    for claim in found:
        support = best_support(library, claim["text"], None)
        copied.append(support.support)
        on_page, covering = right_passage(support, claim)
        pages, passages = pages + on_page, passages + covering
        others = [doc_id for doc_id in everyone if doc_id not in claim["holders"]]
        withheld.append(best_support(library, claim["text"], others).support)
    unrelated = [best_support(library, s, None).support for s in unrelated_sentences()]
    by_id = {claim["id"]: claim for claim in found}
    reworded, reworded_pages = [], 0
    for item in json.loads(args.paraphrases.read_text(encoding="utf-8")):
        claim = by_id.get(item["id"])
        if claim is None:
            continue
        support = best_support(library, item["text"], None)
        reworded.append(support.support)
        reworded_pages += right_passage(support, claim)[0]

    report = {
        "threshold": SUPPORTED_AT,
        "copied": summary(copied, thresholds)
        | {
            "cited_on_the_right_page": round(pages / len(copied), 3),
            "cited_with_the_right_passage": round(passages / len(copied), 3),
        },
        "paraphrased": summary(reworded, thresholds)
        | {"cited_on_the_right_page": round(reworded_pages / max(len(reworded), 1), 3)},
        "source withheld": summary(withheld, thresholds),
        "unrelated": summary(unrelated, thresholds),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
