"""The Gradio application: one tab per resource, each built by its own module."""

from __future__ import annotations

import gradio as gr

from ui.draft_screen import asset
from ui.draft_tab import build_draft_tab
from ui.drafts_tab import build_drafts_tab
from ui.library_tab import build_library_tab
from ui.model_status import build_model_status
from ui.sessions import Sessions

CSS = """
.gradio-container { max-width: 1440px !important; width: 100% !important; margin: auto; }
/* the section panel and its page stay in view beside the document (sticky needs the container
   to clip rather than hide its overflow: hidden makes it a scroll container, which pins
   nothing) */
.gradio-container { overflow: clip !important; }
#export-links a { margin-right: 1em; font-weight: 600; }
""" + asset("draft.css")


def build_app(sessions: Sessions) -> gr.Blocks:
    with gr.Blocks(title="Palimpsest", analytics_enabled=False) as app:
        gr.Markdown("# Palimpsest\nDraft legal and academic text from your own sources.")
        build_model_status(sessions)
        with gr.Tabs() as tabs:
            with gr.Tab("Library", id="library"):
                build_library_tab(app, sessions)
            with gr.Tab("Draft", id="draft") as draft:
                draft_tab = build_draft_tab(app, draft, sessions)
            with gr.Tab("Drafts", id="drafts") as drafts:
                build_drafts_tab(app, drafts, tabs, sessions, draft_tab)
    return app
