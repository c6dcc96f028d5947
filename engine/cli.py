"""The `palimpsest` command line: the same engine API the web UI uses, without a browser."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.attribution import attribute
from engine.config import Settings
from engine.errors import PalimpsestError
from engine.library import Library

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def quiet_model_loading() -> None:
    """Keep library progress bars off stderr: the CLI prints its own progress lines."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def pdf_paths(paths: Sequence[str]) -> Iterator[Path]:
    """The given files, and the PDFs inside the given folders (recursively, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf")
        else:
            yield path


def open_library(args: argparse.Namespace) -> Library:
    return Library(Settings().with_library(args.library))


def cmd_ingest(args: argparse.Namespace) -> int:
    library = open_library(args)
    outcomes = []
    for path in pdf_paths(args.paths):
        outcome = library.ingest(path)
        print(outcome.line(), flush=True)
        outcomes.append(outcome)
    if not outcomes:
        print("no PDF files found in the given paths", file=sys.stderr)
    return EXIT_OK if any(o.readable for o in outcomes) else EXIT_FAILED


def cmd_search(args: argparse.Namespace) -> int:
    hits = open_library(args).search(args.query, k=args.k, doc_ids=args.doc or None)
    if args.json:
        print(json.dumps([hit.to_json() for hit in hits], ensure_ascii=False, indent=2))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank}. {hit.filename} p.{hit.page_label} ({hit.score:.4f})  {snippet}")
    if not hits:
        print("no results")
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    records = open_library(args).documents()
    if args.json:
        fields = ("doc_id", "filename", "pages", "chunks", "empty_pages", "size_bytes", "added_at")
        rows = [{name: getattr(record, name) for name in fields} for record in records]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for record in records:
        print(
            f"{record.doc_id[:12]}  {record.pages:4d} pages  {record.chunks:5d} chunks  "
            f"{record.filename}"
        )
    if not records:
        print("the library is empty; add PDFs with: palimpsest ingest FILE_OR_FOLDER")
    return EXIT_OK


def cmd_attribute(args: argparse.Namespace) -> int:
    supports = attribute(open_library(args), args.text, k=args.k)
    if args.json:
        print(json.dumps([s.to_json() for s in supports], ensure_ascii=False, indent=2))
        return EXIT_OK
    for rank, item in enumerate(supports, start=1):
        quotes = " | ".join(" ".join(quote.split()) for quote in item.quotes()[:3])
        line = f"{rank}. {item.hit.filename} p.{item.hit.page_label} support {item.support:.2f}"
        print(line + (f"  matched: {quotes}" if quotes else ""))
    if not supports:
        print("no supporting passage found")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="palimpsest", description="Draft from your own PDFs with a diffusion language model."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--library",
            help="library folder (default: $PALIMPSEST_LIBRARY or the per-user data folder)",
        )
        sub.set_defaults(handler=handler)
        return sub

    ingest = command("ingest", cmd_ingest, "add PDFs (files or folders) to the library")
    ingest.add_argument("paths", nargs="+", metavar="PATH")

    search = command("search", cmd_search, "hybrid (dense + BM25) search of the library")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    search.add_argument(
        "--doc", action="append", metavar="DOC_ID", help="only this document (repeatable)"
    )
    search.add_argument("--json", action="store_true")

    attribution = command("attribute", cmd_attribute, "the passages that support a text")
    attribution.add_argument("text")
    attribution.add_argument("-k", type=int, default=3, help="number of sources (default 3)")
    attribution.add_argument("--json", action="store_true")

    docs = command("docs", cmd_docs, "list the documents in the library")
    docs.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_model_loading()
    try:
        return args.handler(args)
    except PalimpsestError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
