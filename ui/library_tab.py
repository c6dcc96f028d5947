"""The Library tab: upload PDFs (and .bib files that describe them), see and delete documents,
correct a document's citation metadata, try hybrid search.

Handlers only translate between components and the signed-in user's `engine.library.Library`.
The library keeps its own copy of each PDF; Gradio's copy is swept from its upload folder
(`ui.uploads`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr

from engine.bib_import import import_bib_file
from engine.errors import PalimpsestError
from engine.ingest_pipeline import ingest_files
from engine.ingest_progress import IngestProgress
from engine.library import Library
from engine.metadata import DocumentMetadata
from ui.sessions import Sessions
from ui.uploads import sweep_uploads

DOCUMENT_HEADERS = ["Document", "Pages", "Chunks", "Added", "ID"]
RESULT_HEADERS = ["#", "Document", "Page", "Fused score", "Passage"]
SNIPPET_CHARS = 300
# The metadata form's fields, in order: (field, label); lists are edited one name per line.
METADATA_FIELDS = [
    ("title", "Title"),
    ("authors", "Authors (one per line)"),
    ("year", "Year"),
    ("doi", "DOI"),
    ("parties", "Parties, for a contract or deed (one per line)"),
    ("date", "Date of the instrument (YYYY-MM-DD)"),
]


def document_rows(library: Library) -> list[list]:
    return [
        [
            record.filename,
            record.pages,
            record.chunks,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(record.added_at)),
            record.doc_id[:12],
        ]
        for record in library.documents()
    ]


def document_choices(library: Library) -> list[tuple[str, str]]:
    return [(f"{r.filename} ({r.pages} p.)", r.doc_id) for r in library.documents()]


def metadata_values(metadata: DocumentMetadata) -> list[str]:
    """The form's values for a document's metadata, in `METADATA_FIELDS` order."""
    values = metadata.to_json()
    return [
        "\n".join(values[name]) if isinstance(values[name], list) else values[name]
        for name, _ in METADATA_FIELDS
    ]


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """One line of at most `limit` characters, cut at a word boundary with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"


def build_library_tab(app: gr.Blocks, sessions: Sessions) -> None:
    """Lay out the Library tab inside `app` and wire its events."""
    gr.Markdown("Add PDFs to your library. They stay on this machine.")
    uploading: dict[str, threading.Event] = {}  # browser session -> cancel of its upload
    with gr.Row():
        with gr.Column(scale=2):
            uploads = gr.File(
                label="Upload PDFs (a .bib file with them fills their citation details)",
                file_count="multiple",
                file_types=[".pdf", ".bib"],
                type="filepath",
            )
            upload_log = gr.Textbox(
                label="Upload results", lines=4, interactive=False, elem_id="upload-log"
            )
            cancel_upload = gr.Button("Cancel upload", size="sm", elem_id="upload-cancel")
        with gr.Column(scale=1):
            to_delete = gr.Dropdown(label="Remove a document", choices=[], value=None)
            delete_button = gr.Button("Remove from library", variant="stop")
            delete_log = gr.Textbox(show_label=False, interactive=False, elem_id="delete-log")
    documents = gr.Dataframe(
        headers=DOCUMENT_HEADERS,
        label="Documents",
        interactive=False,
        wrap=True,
        elem_id="documents-table",
    )
    with gr.Accordion("Citation details", open=False, elem_id="metadata-form"):
        meta_doc = gr.Dropdown(label="Document", choices=[], value=None, elem_id="metadata-doc")
        meta_fields = []
        for row in (METADATA_FIELDS[:3], METADATA_FIELDS[3:]):
            with gr.Row():
                meta_fields += [
                    gr.Textbox(label=label, lines=2 if name in ("authors", "parties") else 1)
                    for name, label in row
                ]
        with gr.Row():
            meta_save = gr.Button("Save citation details", scale=1)
            meta_log = gr.Textbox(show_label=False, interactive=False, scale=3, elem_id="meta-log")
    with gr.Row():
        query = gr.Textbox(
            label="Search the library",
            placeholder="e.g. notice period for termination for convenience",
            scale=4,
            elem_id="search-box",
        )
        search_button = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
    results = gr.Dataframe(
        headers=RESULT_HEADERS,
        label="Results (hybrid: embeddings + BM25)",
        interactive=False,
        wrap=True,
        column_widths=["5%", "20%", "15%", "10%", "50%"],
        elem_id="search-results",
    )

    def refreshed(request: gr.Request):
        """The documents table and the remove and metadata menus as the user's library is now."""
        library = sessions(request).workspace.library
        choices = document_choices(library)
        return (
            document_rows(library),
            gr.update(choices=choices, value=None),
            gr.update(choices=choices, value=None),
        )

    def on_upload(paths: list[str] | None, request: gr.Request, progress=gr.Progress()):
        paths = paths or []
        bibs = [path for path in paths if path.lower().endswith(".bib")]
        paths = [path for path in paths if path not in bibs]
        library = sessions(request).workspace.library
        lines = []
        cancel = uploading[request.session_hash] = threading.Event()

        def report(figures: IngestProgress) -> None:
            current = f" · adding {figures.current}" if figures.current else ""
            progress(figures.fraction, desc=figures.line() + current)

        names = [Path(path).name for path in paths]
        try:
            for outcome in ingest_files(
                library, paths, names=names, progress=report, cancel=cancel
            ):
                lines.append(outcome.line())
        except PalimpsestError as error:  # the embedding model cannot be loaded, say
            lines.append(f"failed: {error}")
        finally:
            uploading.pop(request.session_hash, None)
        for path in bibs:  # after the PDFs, so that they can be matched
            try:
                lines += import_bib_file(library, path).lines()
            except PalimpsestError as error:
                lines.append(f"bib: {Path(path).name}: {error}")
        sweep_uploads()
        return "\n".join(lines), *refreshed(request), None

    def on_cancel_upload(request: gr.Request) -> None:
        cancel = uploading.get(request.session_hash)
        if cancel is None:
            gr.Info("Nothing is being uploaded.")
            return
        cancel.set()
        gr.Info("Cancelling: the document being added is undone; those already added stay.")

    def on_delete(doc_id: str | None, request: gr.Request):
        library = sessions(request).workspace.library
        record = library.document(doc_id) if doc_id else None
        try:
            if record is None:
                message = "Choose a document to remove."
            elif library.delete(doc_id):
                message = f"Removed {record.filename}."
            else:
                message = "That document is no longer in the library."
        except PalimpsestError as error:
            message = f"Could not remove it: {error}"
        return message, *refreshed(request)

    def on_pick_document(doc_id: str | None, request: gr.Request):
        metadata = sessions(request).workspace.library.metadata().get(doc_id or "")
        return metadata_values(metadata or DocumentMetadata())

    def on_save_metadata(
        doc_id: str | None,
        title: str,
        authors: str,
        year: str,
        doi: str,
        parties: str,
        date: str,
        request: gr.Request,
    ):
        if not doc_id:
            return "Choose a document first."
        try:
            sessions(request).workspace.library.edit_metadata(
                doc_id,
                title=title,
                authors=authors.splitlines(),  # one name per line: "Marks and Spencer" is one
                year=year,
                doi=doi,
                parties=parties.splitlines(),
                date=date,
            )
        except PalimpsestError as error:
            return f"Not saved: {error}"
        return "Saved."

    def on_search(text: str, request: gr.Request):
        if not text.strip():
            return []
        try:
            hits = sessions(request).workspace.library.search(text, k=8)
        except PalimpsestError as error:
            gr.Warning(str(error))
            return []
        if not hits:
            gr.Info("No passage in the library matches that search.")
        return [
            [rank, hit.filename, hit.page_note(), round(hit.score, 4), snippet(hit.text)]
            for rank, hit in enumerate(hits, start=1)
        ]

    uploads.upload(
        on_upload,
        inputs=uploads,
        outputs=[upload_log, documents, to_delete, meta_doc, uploads],
        concurrency_limit=1,
        api_name="upload",
    )
    # Its own queue, so it runs while the upload it cancels does.
    cancel_upload.click(on_cancel_upload, concurrency_limit=None, api_name="cancel_upload")
    delete_button.click(
        on_delete,
        inputs=to_delete,
        outputs=[delete_log, documents, to_delete, meta_doc],
        api_name="remove_document",
    )
    app.load(refreshed, outputs=[documents, to_delete, meta_doc], api_name="documents")
    meta_doc.change(
        on_pick_document, inputs=meta_doc, outputs=meta_fields, api_name="document_metadata"
    )
    meta_save.click(
        on_save_metadata,
        inputs=[meta_doc, *meta_fields],
        outputs=meta_log,
        api_name="save_document_metadata",
    )
    search_button.click(
        on_search, inputs=query, outputs=results, concurrency_limit=4, api_name="search"
    )
    query.submit(
        on_search,
        inputs=query,
        outputs=results,
        concurrency_limit=4,
        api_visibility="undocumented",
    )
