"""The Drafts tab: saved drafts to open (and resume), delete and export."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import gradio as gr

from engine.errors import PalimpsestError
from engine.workspace import Workspace
from ui.draft_tab import DraftTab
from ui.runs import RunRegistry

HEADERS = ["Title", "Updated", "Step", "Done", "ID"]


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


def file_stem(title: str, limit: int = 60) -> str:
    """A file name for a draft's title: its words, each run of other characters one space
    ("Draft the clauses." gives "Draft the clauses", not "Draft the clauses_")."""
    return re.sub(r"[^\w\-]+", " ", title).strip()[:limit].strip()


def build_drafts_tab(
    app: gr.Blocks,
    tab: gr.Tab,
    tabs: gr.Tabs,
    workspace: Workspace,
    runs: RunRegistry,
    draft_tab: DraftTab,
) -> None:
    table = gr.Dataframe(
        headers=HEADERS, interactive=False, wrap=True, label="Saved drafts", elem_id="drafts-table"
    )
    chosen = gr.Textbox(label="Chosen draft", interactive=False, elem_id="chosen-draft")
    with gr.Row():
        open_button = gr.Button("Open in the Draft tab", variant="primary", elem_id="open-draft")
        export_md = gr.Button("Export Markdown", elem_id="export-md")
        export_docx = gr.Button("Export DOCX", elem_id="export-docx")
        delete = gr.Button("Delete", variant="stop", elem_id="delete-draft")
    message = gr.Markdown(elem_id="drafts-message")
    download = gr.File(label="Download", interactive=False, elem_id="export-file")

    def on_select(rows, event: gr.SelectData):
        row = event.index[0]
        return rows.iloc[row, 4] if row < len(rows) else ""

    def on_open(draft_id: str):
        if not draft_id:
            return [gr.update(), "Choose a draft in the table first."] + [gr.update()] * len(
                draft_tab.outputs
            )
        try:
            values = draft_tab.show(draft_id)
        except PalimpsestError as error:
            return [gr.update(), str(error)] + [gr.update()] * len(draft_tab.outputs)
        return [gr.Tabs(selected="draft"), ""] + values

    def on_export(draft_id: str, fmt: str):
        if not draft_id:
            return None, "Choose a draft in the table first."
        try:
            folder = Path(tempfile.mkdtemp(prefix="palimpsest-export-"))
            title = workspace.drafts.load(draft_id).title or draft_id
            safe = file_stem(title)
            path = workspace.export(draft_id, fmt, folder / f"{safe or draft_id}.{fmt}")
        except PalimpsestError as error:
            return None, str(error)
        return str(path), f"Exported {path.name}."

    def on_delete(draft_id: str):
        if not draft_id:
            return draft_rows(workspace), "Choose a draft in the table first.", ""
        if runs.is_running(draft_id):
            return draft_rows(workspace), "That draft is running; pause it first.", draft_id
        workspace.drafts.delete(draft_id)
        return draft_rows(workspace), "Deleted.", ""

    table.select(on_select, inputs=table, outputs=chosen)
    open_button.click(on_open, inputs=chosen, outputs=[tabs, message, *draft_tab.outputs])
    export_md.click(lambda d: on_export(d, "md"), inputs=chosen, outputs=[download, message])
    export_docx.click(lambda d: on_export(d, "docx"), inputs=chosen, outputs=[download, message])
    delete.click(on_delete, inputs=chosen, outputs=[table, message, chosen])
    app.load(lambda: draft_rows(workspace), outputs=table)
    tab.select(lambda: draft_rows(workspace), outputs=table)
