"""The Library tab: upload PDFs, see and delete documents, try hybrid search.

Handlers only translate between components and the signed-in user's `engine.library.Library`.
The library keeps its own copy of each PDF; Gradio's copy is swept from its upload folder
(`ui.uploads`).
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from engine.errors import PalimpsestError
from engine.library import Library
from ui.sessions import Sessions
from ui.uploads import sweep_uploads

DOCUMENT_HEADERS = ["Document", "Pages", "Chunks", "Added", "ID"]
RESULT_HEADERS = ["#", "Document", "Page", "Fused score", "Passage"]
SNIPPET_CHARS = 300


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


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """One line of at most `limit` characters, cut at a word boundary with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"


def build_library_tab(app: gr.Blocks, sessions: Sessions) -> None:
    """Lay out the Library tab inside `app` and wire its events."""
    gr.Markdown("Add PDFs to your library. They stay on this machine.")
    with gr.Row():
        with gr.Column(scale=2):
            uploads = gr.File(
                label="Upload PDFs", file_count="multiple", file_types=[".pdf"], type="filepath"
            )
            upload_log = gr.Textbox(
                label="Upload results", lines=4, interactive=False, elem_id="upload-log"
            )
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
        column_widths=["5%", "22%", "8%", "10%", "55%"],
        elem_id="search-results",
    )

    def refreshed(request: gr.Request):
        """The documents table and the remove menu as the user's library is now."""
        library = sessions(request).workspace.library
        return document_rows(library), gr.update(choices=document_choices(library), value=None)

    def on_upload(paths: list[str] | None, request: gr.Request, progress=gr.Progress()):
        paths = paths or []
        library = sessions(request).workspace.library
        lines = []
        for number, path in enumerate(paths):

            def report(fraction: float, message: str, number: int = number) -> None:
                progress((number + fraction) / len(paths), desc=message)

            try:
                outcome = library.ingest(path, filename=Path(path).name, progress=report)
                lines.append(outcome.line())
            except PalimpsestError as error:
                lines.append(f"failed: {Path(path).name}: {error}")
        sweep_uploads()
        return "\n".join(lines), *refreshed(request), None

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
            [rank, hit.filename, hit.page_label, round(hit.score, 4), snippet(hit.text)]
            for rank, hit in enumerate(hits, start=1)
        ]

    uploads.upload(
        on_upload,
        inputs=uploads,
        outputs=[upload_log, documents, to_delete, uploads],
        concurrency_limit=1,
        api_name="upload",
    )
    delete_button.click(
        on_delete,
        inputs=to_delete,
        outputs=[delete_log, documents, to_delete],
        api_name="remove_document",
    )
    app.load(refreshed, outputs=[documents, to_delete], api_name="documents")
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
