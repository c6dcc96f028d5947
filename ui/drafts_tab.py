"""The Drafts tab: the signed-in user's saved drafts to open (and resume), delete and download.

Downloads are plain links to the app's `/download` route (`ui.server`), which exports the draft
from the requesting user's own store: no exported file is ever left where another user's
request could fetch it.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote

import gradio as gr

from engine.citations import STYLES
from engine.errors import PalimpsestError
from engine.workspace import Workspace
from ui.draft_tab import DraftTab
from ui.sessions import Sessions

HEADERS = ["Title", "Updated", "Step", "Done", "ID"]
PLAIN_CITATIONS = "file name and page"


def draft_rows(workspace: Workspace) -> list[list]:
    return [
        [
            d.title,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(d.updated)),
            d.step,
            "yes" if d.done else "no",
            d.draft_id,
        ]
        for d in workspace.drafts.drafts()
    ]


def download_links(draft_id: str, style: str = PLAIN_CITATIONS) -> str:
    """Links that download the chosen draft with its citations in `style` (relative, so they
    work under a path prefix)."""
    if not draft_id:
        return ""
    target = quote(draft_id, safe="")
    query = f"?style={quote(style)}" if style in STYLES else ""
    return " · ".join(
        f'<a href="download/{target}.{fmt}{query}" download id="download-{fmt}">'
        f"{html.escape(label)}</a>"
        for fmt, label in (("md", "Download Markdown"), ("docx", "Download DOCX with footnotes"))
    )


def build_drafts_tab(
    app: gr.Blocks, tab: gr.Tab, tabs: gr.Tabs, sessions: Sessions, draft_tab: DraftTab
) -> None:
    table = gr.Dataframe(
        headers=HEADERS, interactive=False, wrap=True, label="Saved drafts", elem_id="drafts-table"
    )
    chosen = gr.Textbox(label="Chosen draft", interactive=False, elem_id="chosen-draft")
    with gr.Row():
        open_button = gr.Button("Open in the Draft tab", variant="primary", elem_id="open-draft")
        delete = gr.Button("Delete", variant="stop", elem_id="delete-draft")
    with gr.Row():
        style = gr.Dropdown(
            label="Citations in downloads",
            choices=[PLAIN_CITATIONS, *STYLES],
            value=PLAIN_CITATIONS,
            scale=1,
            elem_id="citation-style",
        )
        downloads = gr.HTML(elem_id="export-links")
    message = gr.Markdown(elem_id="drafts-message")

    def rows(request: gr.Request):
        return draft_rows(sessions(request).workspace)

    def on_select(table_rows, event: gr.SelectData):
        row = event.index[0]
        return table_rows.iloc[row, 4] if row < len(table_rows) else ""

    def on_open(draft_id: str, request: gr.Request):
        if not draft_id:
            return {message: "Choose a draft in the table first."}
        try:
            sessions(request).workspace.drafts.load(draft_id)
        except PalimpsestError as error:
            return {message: str(error)}
        return {
            tabs: gr.Tabs(selected="draft"),
            message: "",
            **draft_tab.show(draft_id, sessions(request)),
        }

    def on_delete(draft_id: str, request: gr.Request):
        session = sessions(request)
        workspace = session.workspace
        if not draft_id:
            return draft_rows(workspace), "Choose a draft in the table first.", ""
        if session.runs.is_running(draft_id):
            return draft_rows(workspace), "That draft is running; pause it first.", draft_id
        deleted = workspace.drafts.delete(draft_id)
        return draft_rows(workspace), "Deleted." if deleted else "No such draft.", ""

    hidden = "undocumented"  # callable, but only the page needs it
    table.select(on_select, inputs=table, outputs=chosen, api_visibility=hidden)
    for changed in (chosen, style):
        changed.change(
            download_links, inputs=[chosen, style], outputs=downloads, api_visibility=hidden
        )
    open_button.click(
        on_open,
        inputs=chosen,
        outputs=[tabs, message, *draft_tab.outputs()],
        api_name="open_draft",
    )
    delete.click(
        on_delete, inputs=chosen, outputs=[table, message, chosen], api_name="delete_draft"
    )
    app.load(rows, outputs=table, api_name="drafts")
    tab.select(rows, outputs=table, api_visibility=hidden)
