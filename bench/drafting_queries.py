"""How a drafting step's retrieval query should be formed, measured on bench/evalset.

    python bench/drafting_queries.py --library DIR [--pdfs bench/evalset/pdfs]

A drafting step retrieves for a section with a query made of the draft's instruction, the
section's heading and its text so far. Here each evaluation question plays the heading (what the
section is about) under several instructions a user might write, and the text so far is empty
(the first retrieval of a run, the one the first steps draft from). Variants:
- `heading alone`: the question only (what bench/retrieval_eval.py measures);
- `instruction + heading`: one query, as engine/drafting.py formed it before this bench;
- `two queries fused`: the heading alone and instruction + heading searched apart, the two
  rankings fused by reciprocal rank fusion (`engine.fusion`);
- `as drafting forms it`: `engine.drafting.section_query`, what a draft searches with now (the
  heading, and the text so far, empty here);
Prints JSON: recall@1/5/10, MRR@10 and the answer within a 3,000-character budget per variant,
each averaged over the instructions, and per instruction. The library must already hold the
evaluation PDFs (run bench/retrieval_eval.py --library DIR once).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from retrieval_eval import HERE, K, evaluate

from engine.config import Settings
from engine.drafting import section_query
from engine.fusion import reciprocal_rank_fusion
from engine.library import Library, SearchHit

INSTRUCTIONS = (
    "Write a short research note for a colleague, drawing on the sources in the library.",
    "Draft a memo to the partner summarising what the documents say, with citations.",
    "Prepare a literature review section in an academic register.",
)


def fused(library: Library, queries: list[str]) -> list[SearchHit]:
    """The hits of several queries for one section, fused by reciprocal rank fusion."""
    results = library.search_many(queries, k=K)
    by_id = {hit.chunk_id: hit for hits in results for hit in hits}
    ranking = reciprocal_rank_fusion([[hit.chunk_id for hit in hits] for hits in results])
    return [by_id[chunk_id] for chunk_id, _ in ranking[:K]]


def variants(library: Library, instruction: str) -> dict[str, Callable[[str], list[SearchHit]]]:
    return {
        "heading alone": lambda q: library.search(q, k=K),
        "instruction + heading": lambda q: library.search(f"{instruction} {q}", k=K),
        "two queries fused": lambda q: fused(library, [q, f"{instruction} {q}"]),
        "as drafting forms it": lambda q: library.search(section_query(instruction, q, ""), k=K),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--questions", type=Path, default=HERE / "evalset" / "questions.json")
    args = parser.parse_args()
    library = Library(Settings(library_dir=args.library))
    present = {record.filename for record in library.documents()}
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    questions = [q for q in questions if q["file"] in present]
    per_instruction = {
        instruction: {
            name: evaluate(search, questions)
            for name, search in variants(library, instruction).items()
        }
        for instruction in INSTRUCTIONS
    }
    names = next(iter(per_instruction.values())).keys()
    metrics = ("recall@1", "recall@5", "recall@10", "mrr@10", "in_budget")
    mean = {
        name: {
            metric: round(statistics.mean(r[name][metric] for r in per_instruction.values()), 3)
            for metric in metrics
            if metric in next(iter(per_instruction.values()))[name]
        }
        for name in names
    }
    report = {
        "questions": len(questions),
        "mean over instructions": mean,
        "per instruction": per_instruction,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
