"""The `palimpsest` command line: the same engine API the web UI uses, without a browser.

Only the standard library, the settings and the SQLite catalog are imported at start: each command
imports what it needs (torch, transformers, Chroma, sentence-transformers) when it runs, so
`--help` and `docs` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.catalog import open_catalog
from engine.config import DEFAULT_MODEL, Settings
from engine.errors import PalimpsestError
from engine.metadata import DocumentMetadata

if TYPE_CHECKING:
    from engine.draft import Draft
    from engine.draft_editor import DraftEditor
    from engine.draft_reading import DraftReading
    from engine.drafting import Drafter
    from engine.library import Library
    from engine.workspace import Workspace

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
EXIT_CANCELLED = 130  # as a shell reports a command stopped by Ctrl+C


def quiet_model_loading() -> None:
    """Keep library progress bars off stderr: the CLI prints its own progress lines.

    The Hugging Face libraries read the switch when they are imported; those already imported
    (gradio imports huggingface_hub) are told directly.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def bib_paths(paths: Sequence[str]) -> list[Path]:
    """The .bib files given, inside the given folders (recursively), and beside given files."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() == ".bib")
        elif path.suffix.lower() == ".bib":
            found.append(path)
        elif path.parent.is_dir():
            found += sorted(p for p in path.parent.glob("*") if p.suffix.lower() == ".bib")
    return list(dict.fromkeys(found))


def pdf_paths(paths: Sequence[str]) -> Iterator[Path]:
    """The given files, and the PDFs inside the given folders (recursively, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf")
        else:
            yield path


def open_library(args: argparse.Namespace) -> Library:
    from engine.library import Library

    return Library(Settings().with_library(args.library))


def open_workspace(args: argparse.Namespace) -> Workspace:
    from engine.workspace import Workspace

    return Workspace(Settings().with_library(args.library))


def run_to_stderr(
    drafter: Drafter, draft: Draft, stop_after: int | None, only: list[int] | None = None
) -> None:
    """Run the draft (or `only` these blocks), printing one progress line per step to stderr."""
    for event in drafter.run(draft, only=only, stop_after=stop_after):
        progress = "  ".join(
            f"[{i + 1}] {b.step}/{b.steps_total}" + (" done" if b.done else f" {b.masked} masked")
            for i, b in enumerate(event.blocks)
        )
        print(f"step {event.step}: {progress}", file=sys.stderr, flush=True)


def print_draft(data: dict, as_json: bool) -> None:
    """A draft's JSON (`engine.draft_output.draft_json`) as JSON or as text."""
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    state = "done" if data["done"] else f"paused at step {data['step']}"
    print(f"{data['title']}  (draft {data['draft_id']}, {state})\n")
    for block in data["blocks"]:
        print(f"## {block['heading']}\n{block['text']}\n")
        for source in block["sources"][:3]:
            print(f"   - {source['filename']} p.{source['page_label']}")
        print()


def cmd_draft(args: argparse.Namespace) -> int:
    from engine.draft import DraftSettings

    workspace = open_workspace(args)
    model = args.model or workspace.settings.model
    drafter = workspace.drafter(model, args.int8 or args.fast)
    budget = getattr(drafter.denoiser, "budget", None)
    if budget is not None and budget.slow:
        print(f"note: {budget.message}", file=sys.stderr, flush=True)
    settings = DraftSettings.from_recipe(
        drafter.denoiser.family.recipe,
        fast=args.fast,
        model=model,
        block_tokens=args.block_tokens,
        passages=args.passages,
        refresh_every=args.refresh_every,
        steps=args.steps,
        sub_block=args.sub_block,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        order=args.order,
        threshold=args.threshold,
        min_tokens=args.min_tokens,
        cfg=args.cfg,
        context_cache=args.context_cache or None,
        int8=args.int8 or None,
    )
    follow = [full_doc_id(workspace.library, d) for d in args.follow or []]
    draft = drafter.start(args.instruction, args.section, settings, seed=args.seed, follow=follow)
    print(f"draft {draft.draft_id}", file=sys.stderr, flush=True)
    with workspace.running(draft.draft_id):  # block operations refuse it meanwhile
        run_to_stderr(drafter, draft, args.stop_after)
    print_draft(workspace.to_json(drafter, draft), args.json)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    workspace = open_workspace(args)
    draft, drafter = workspace.open_to_run(args.draft_id)
    with workspace.running(draft.draft_id):
        run_to_stderr(drafter, draft, args.stop_after)
    print_draft(workspace.to_json(drafter, draft), args.json)
    return EXIT_OK


def stored_reading(args: argparse.Namespace) -> tuple[Library, DraftReading]:
    """The library and what the stored draft says, read without its model (and without torch);
    a draft saved before decoded texts were stored is decoded by its model."""
    from engine.draft_reading import read_stored

    reading = read_stored(Settings().with_library(args.library).library_dir, args.draft_id)
    if reading is not None:
        return open_library(args), reading
    workspace = open_workspace(args)
    return workspace.library, workspace.reading(args.draft_id)


def cmd_show(args: argparse.Namespace) -> int:
    from engine.draft_output import draft_json

    library, reading = stored_reading(args)
    print_draft(draft_json(library, reading), args.json)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from engine.draft_output import export_reading

    library, reading = stored_reading(args)
    path = export_reading(library, reading, args.format, args.output, args.style)
    print(f"wrote {path}")
    return EXIT_OK


# -- block operations: `--block N` counts from 1, as `show` and the web app number blocks ------

BlockEdit = Callable[["Workspace", int], "tuple[Draft, DraftEditor]"]
BlockRenoise = Callable[["Workspace", int], "tuple[Draft, Drafter]"]


def changed_block(args: argparse.Namespace, operation: BlockEdit) -> int:
    """Apply one block operation (a Workspace transaction, which loads the model's tokenizer
    only) and print the draft as `show` does."""
    workspace = open_workspace(args)
    draft, editor = operation(workspace, args.block - 1)
    print_draft(workspace.to_json(editor, draft), args.json)
    return EXIT_OK


def redrafted_block(args: argparse.Namespace, operation: BlockRenoise) -> int:
    """Re-noise a block (re-run or retarget), then redraft it alone in this process, holding
    the draft as running so no other operation lands between two of its steps."""
    workspace = open_workspace(args)
    index = args.block - 1
    draft, drafter = operation(workspace, index)
    print(f"draft {draft.draft_id}: redrafting block {args.block}", file=sys.stderr, flush=True)
    with workspace.running(draft.draft_id):
        run_to_stderr(drafter, draft, None, only=[index])
    print_draft(workspace.to_json(drafter, draft), args.json)
    return EXIT_OK


def cmd_pin(args: argparse.Namespace) -> int:
    return changed_block(args, lambda ws, i: ws.pin(args.draft_id, i, args.start, args.end))


def cmd_unpin(args: argparse.Namespace) -> int:
    return changed_block(args, lambda ws, i: ws.unpin(args.draft_id, i, args.start, args.end))


def cmd_edit(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else read_text(args.file)
    return changed_block(args, lambda ws, i: ws.edit(args.draft_id, i, text, lock=args.lock))


def cmd_accept(args: argparse.Namespace) -> int:
    return changed_block(args, lambda ws, i: ws.accept(args.draft_id, i))


def cmd_reject(args: argparse.Namespace) -> int:
    return changed_block(args, lambda ws, i: ws.reject(args.draft_id, i))


def cmd_rerun(args: argparse.Namespace) -> int:
    return redrafted_block(args, lambda ws, i: ws.rerun(args.draft_id, i, args.strength))


def cmd_retarget(args: argparse.Namespace) -> int:
    def retarget(workspace: Workspace, index: int) -> tuple[Draft, Drafter]:
        doc_ids = [full_doc_id(workspace.library, d) for d in args.doc or []]
        return workspace.retarget(args.draft_id, index, doc_ids, args.strength)

    return redrafted_block(args, retarget)


def read_text(path: str) -> str:
    """A file's text ('-': standard input), without the newline an editor ends it with."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PalimpsestError(f"cannot read {path}: {error}") from error
    return text.rstrip("\n")


def full_doc_id(library: Library, doc_id: str) -> str:
    """The document whose id is `doc_id` or starts with it (`docs` prints the first 12
    characters); an unknown id is left as given, for the operation to refuse."""
    matches = [r.doc_id for r in library.documents() if r.doc_id.startswith(doc_id)]
    if len(matches) > 1 and doc_id not in matches:
        raise PalimpsestError(f"{doc_id!r} starts the ids of {len(matches)} documents; give more")
    return matches[0] if len(matches) == 1 else doc_id


def cmd_ingest(args: argparse.Namespace) -> int:
    """Add the PDFs through the ingest pipeline: one outcome line per file on stdout, progress
    on stderr; Ctrl+C cancels cleanly (exit 130)."""
    from engine.cli_progress import StderrProgress, cancel_on_interrupt
    from engine.ingest_pipeline import ingest_files

    library = open_library(args)
    paths = [path for path in pdf_paths(args.paths) if path.suffix.lower() != ".bib"]
    if not paths:
        print("no PDF files found in the given paths", file=sys.stderr)
    progress = StderrProgress()
    cancel = threading.Event()
    outcomes = []
    with cancel_on_interrupt(cancel):
        for outcome in ingest_files(
            library, paths, workers=args.workers, progress=progress, cancel=cancel
        ):
            progress.clear()
            print(outcome.line(), flush=True)
            outcomes.append(outcome)
    progress.finish()
    if cancel.is_set():
        added = sum(o.status == "added" for o in outcomes)
        left = sum(o.status == "cancelled" for o in outcomes)
        print(
            f"cancelled: {added} files added before the cancel stay in the library; "
            f"{left} were not added (nothing of them was kept)",
            file=sys.stderr,
        )
        return EXIT_CANCELLED
    import_bibs(library, bib_paths(args.paths))
    return EXIT_OK if any(o.readable for o in outcomes) else EXIT_FAILED


def import_bibs(library: Library, paths: Sequence[Path]) -> bool:
    """Fill the library's metadata from each .bib file, printing what each did; False when one
    could not be read at all."""
    from engine.bib_import import import_bib_file

    readable = True
    for path in paths:
        try:
            lines = import_bib_file(library, path).lines()
        except PalimpsestError as error:
            lines, readable = [f"bib: {path.name}: {error}"], False
        for line in lines:
            print(line, flush=True)
    return readable


def cmd_bib(args: argparse.Namespace) -> int:
    if args.action == "import":
        if not args.files:
            raise PalimpsestError("give the .bib file(s) to import")
        readable = import_bibs(open_library(args), [Path(f) for f in args.files])
        return EXIT_OK if readable else EXIT_FAILED
    from engine.bibtex import to_bibtex

    catalog = open_catalog(Settings().with_library(args.library).library_dir)
    records = catalog.documents() if catalog is not None else []
    metadata = catalog.metadata() if catalog is not None else {}
    text = to_bibtex((r.filename, metadata[r.doc_id]) for r in records if r.doc_id in metadata)
    if args.output in (None, "-"):
        print(text, end="")
        return EXIT_OK
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"wrote {len(records)} entries to {args.output}", file=sys.stderr)
    return EXIT_OK


METADATA_FLAGS = {
    "title": "the title",
    "authors": "the authors, separated by ';' or ' and '",
    "year": "the year of publication (four digits)",
    "doi": "the DOI",
    "parties": "an instrument's parties, separated by ';' or ' and '",
    "date": "an instrument's date, YYYY-MM-DD",
    "entry_type": "the BibTeX entry type (article, book, misc...)",
    "key": "the BibTeX citation key",
}


def cmd_meta(args: argparse.Namespace) -> int:
    """Show a document's citation metadata, after changing the fields given (empty clears)."""
    library = open_library(args)
    doc_id = full_doc_id(library, args.doc_id)
    changes = {
        name: getattr(args, name) for name in METADATA_FLAGS if getattr(args, name) is not None
    }
    metadata = (
        library.edit_metadata(doc_id, **changes) if changes else library.metadata().get(doc_id)
    )
    if metadata is None:
        raise PalimpsestError(f"no document {args.doc_id!r} in the library")
    if args.json:
        print(json.dumps({"doc_id": doc_id, **metadata.to_json()}, ensure_ascii=False, indent=2))
        return EXIT_OK
    for name, value in metadata.to_json().items():
        shown = "; ".join(value) if isinstance(value, list) else value
        if name == "extra":
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"{name:10s} {shown}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    hits = open_library(args).search(args.query, k=args.k, doc_ids=args.doc or None)
    if args.json:
        print(json.dumps([hit.to_json() for hit in hits], ensure_ascii=False, indent=2))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank}. {hit.filename} {hit.page_note()} ({hit.score:.4f})  {snippet}")
    if not hits:
        print("no results")
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    """Read from the catalog alone: listing needs neither Chroma nor a model."""
    catalog = open_catalog(Settings().with_library(args.library).library_dir)
    records = catalog.documents() if catalog is not None else []
    if args.json:
        metadata = catalog.metadata() if catalog is not None else {}
        fields = ("doc_id", "filename", "pages", "chunks", "empty_pages", "size_bytes", "added_at")
        rows = [
            {
                **{name: getattr(record, name) for name in fields},
                "metadata": metadata.get(record.doc_id, DocumentMetadata()).to_json(),
            }
            for record in records
        ]
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
    if args.sentences:
        return print_sentence_attribution(args)
    from engine.attribution import attribute

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


def print_sentence_attribution(args: argparse.Namespace) -> int:
    """`attribute --sentences`: each sentence, supported or not, with its own citations."""
    from engine.attribution import attribute_sentences

    sentences = attribute_sentences(open_library(args), args.text, k=args.k)
    if args.json:
        print(json.dumps([s.to_json() for s in sentences], ensure_ascii=False, indent=2))
        return EXIT_OK
    for number, sentence in enumerate(sentences, start=1):
        verdict = "supported" if sentence.supported else "UNSUPPORTED"
        print(f"{number}. [{verdict} {sentence.support:.2f}] {' '.join(sentence.text.split())}")
        for citation in sentence.citations:
            quote = " ".join(citation.quote().split())
            print(f"   {citation.hit.filename} p.{citation.hit.page_label}: “{quote}”")
    return EXIT_OK


def cmd_adduser(args: argparse.Namespace) -> int:
    """Add an account (or change its password) in a users file for `python app.py --auth`."""
    from engine.users import Users

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return EXIT_ERROR
    else:
        password = sys.stdin.readline().rstrip("\n")
    users = Users(args.users)
    users.set_password(args.name, password)
    print(f"{args.name} can sign in with --auth {args.users}")
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
    ingest.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes reading PDFs while this one embeds (0 or 1: read them here; default: "
        "$PALIMPSEST_INGEST_WORKERS or one per core, at most 4)",
    )

    search = command("search", cmd_search, "hybrid (dense + BM25) search of the library")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    search.add_argument(
        "--doc", action="append", metavar="DOC_ID", help="only this document (repeatable)"
    )
    search.add_argument("--json", action="store_true")

    attribution = command("attribute", cmd_attribute, "the passages that support a text")
    attribution.add_argument("text")
    attribution.add_argument(
        "-k", type=int, default=3, help="number of sources (per sentence with --sentences)"
    )
    attribution.add_argument(
        "--sentences", action="store_true", help="cite each sentence; flag those unsupported"
    )
    attribution.add_argument("--json", action="store_true")

    draft = command("draft", cmd_draft, "draft sections from the library with a diffusion model")
    draft.add_argument("instruction")
    draft.add_argument(
        "--section",
        action="append",
        required=True,
        metavar="HEADING",
        help="a section heading (repeat for each section)",
    )
    draft.add_argument(
        "--model",
        help="hub id, model folder, or 'demo' (default: "
        "$PALIMPSEST_MODEL or " + DEFAULT_MODEL + ")",
    )
    draft.add_argument("--block-tokens", type=int, default=64, help="most tokens per section")
    draft.add_argument("--passages", type=int, default=3, help="evidence passages per section")
    draft.add_argument(
        "--refresh-every",
        type=int,
        default=4,
        help="re-retrieve evidence from the draft every N steps (0: never)",
    )
    draft.add_argument("--seed", type=int, default=0)
    draft.add_argument(
        "--follow",
        action="append",
        metavar="DOC_ID",
        help="draft every section from this document only (repeatable; an id or its start)",
    )
    recipe = draft.add_argument_group(
        "sampling", "each defaults to the model family's published recipe (see the README)"
    )
    recipe.add_argument("--steps", type=int, help="denoising steps per section")
    recipe.add_argument("--sub-block", type=int, help="tokens decoded in parallel (0: all)")
    recipe.add_argument("--temperature", type=float)
    recipe.add_argument("--top-p", type=float)
    recipe.add_argument("--top-k", type=int)
    recipe.add_argument(
        "--order",
        help="which proposals commit first: low_confidence, margin, entropy, maskgit_plus, random",
    )
    recipe.add_argument("--threshold", type=float, help="commit by confidence >= this (Fast-dLLM)")
    recipe.add_argument("--min-tokens", type=int, help="a section never ends before this")
    recipe.add_argument("--cfg", type=float, help="classifier-free guidance scale (LLaDA's)")
    recipe.add_argument(
        "--fast",
        action="store_true",
        help="fast on CPU: int8 weights and Fast-dLLM's threshold 0.9 (changes the draft)",
    )
    recipe.add_argument("--int8", action="store_true", help="int8 linear layers on a CPU")
    recipe.add_argument(
        "--context-cache",
        action="store_true",
        help="Fast-dLLM's prefix cache: refreshed at each sub-block start, reused within it",
    )
    draft.add_argument("--stop-after", type=int, metavar="N", help="pause after N steps")
    draft.add_argument("--json", action="store_true")

    resume = command("resume", cmd_resume, "continue a saved draft from its step")
    resume.add_argument("draft_id")
    resume.add_argument("--stop-after", type=int, metavar="N", help="pause after N steps")
    resume.add_argument("--json", action="store_true")

    show = command("show", cmd_show, "print a saved draft")
    show.add_argument("draft_id")
    show.add_argument("--json", action="store_true")

    export = command("export", cmd_export, "export a draft to Markdown or DOCX with footnotes")
    export.add_argument("draft_id")
    export.add_argument("--format", choices=["md", "docx"], required=True)
    export.add_argument("-o", "--output", required=True, metavar="FILE")
    export.add_argument(
        "--style",
        choices=["author-date", "numeric", "legal"],
        help="cite sources in this style and end with a bibliography "
        "(default: file name and page label)",
    )

    add_block_commands(command)

    docs = command("docs", cmd_docs, "list the documents in the library")
    docs.add_argument("--json", action="store_true", help="with each document's metadata")

    meta = command("meta", cmd_meta, "show or change a document's citation metadata")
    meta.add_argument("doc_id", metavar="DOC_ID", help="an id or its start, as `docs` prints it")
    for name, what in METADATA_FLAGS.items():
        flag = "--type" if name == "entry_type" else f"--{name}"
        meta.add_argument(flag, dest=name, metavar="TEXT", help=what + " ('': clear it)")
    meta.add_argument("--json", action="store_true")

    bib = command("bib", cmd_bib, "import or export the library's metadata as BibTeX")
    bib.add_argument("action", choices=["import", "export"])
    bib.add_argument("files", nargs="*", metavar="FILE", help="import: the .bib file(s)")
    bib.add_argument("-o", "--output", metavar="FILE", help="export: write here (default: stdout)")

    adduser = commands.add_parser(
        "adduser",
        help="add an account for `python app.py --auth FILE` (password from the prompt or stdin)",
    )
    adduser.add_argument("name")
    adduser.add_argument("--users", required=True, metavar="FILE", help="the users file")
    adduser.set_defaults(handler=cmd_adduser)
    return parser


def add_block_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """pin, unpin, edit, rerun and retarget: each changes one block of a saved draft, saves it
    and prints the draft as `show` does (`--json` as `show --json`)."""

    def block_command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = command(name, handler, help_text)
        sub.add_argument("draft_id")
        sub.add_argument(
            "--block",
            type=int,
            required=True,
            metavar="N",
            help="the block, numbered from 1 as `show` and the web app list them",
        )
        sub.add_argument("--json", action="store_true", help="print the draft as `show --json`")
        return sub

    def selection(sub: argparse.ArgumentParser) -> None:
        for flag, what in (("--start", "first character"), ("--end", "character after the end")):
            sub.add_argument(
                flag,
                type=int,
                required=True,
                help=f"the selection's {what}, counted from 0 in the block's text as `show` "
                "prints it (masks included)",
            )

    def strength(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--strength",
            type=float,
            default=1.0,
            help="share of the unpinned tokens re-masked, 0-1 (default 1: all of them)",
        )

    selection(block_command("pin", cmd_pin, "pin the text of a block: it never changes again"))
    selection(block_command("unpin", cmd_unpin, "unpin the pinned text in a selection"))
    edit = block_command(
        "edit", cmd_edit, "replace a block's text with yours (its pinned text must stay)"
    )
    given = edit.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="the new text")
    given.add_argument("--file", metavar="FILE", help="read the new text from FILE ('-': stdin)")
    edit.add_argument("--lock", action="store_true", help="pin all of the new text")
    block_command("accept", cmd_accept, "accept a block's tracked change (show --json: redline)")
    block_command("reject", cmd_reject, "reject a block's tracked change: its text before it")
    strength(
        block_command(
            "rerun", cmd_rerun, "re-mask a block's unpinned text and redraft that block alone"
        )
    )
    retarget = block_command(
        "retarget",
        cmd_retarget,
        "limit a block's retrieval to some documents and redraft that block alone",
    )
    retarget.add_argument(
        "--doc",
        action="append",
        metavar="DOC_ID",
        help="a document to follow (repeatable; an id or its start, as `docs` prints it); "
        "none: the whole library again",
    )
    strength(retarget)


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
