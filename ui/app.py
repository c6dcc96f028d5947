"""The Gradio application: one tab per resource, each built by its own module."""

from __future__ import annotations

import gradio as gr

from engine.library import Library
from ui.library_tab import build_library_tab

CSS = """
.gradio-container { max-width: 1280px !important; width: 100% !important; margin: auto; }
"""


def build_app(library: Library) -> gr.Blocks:
    with gr.Blocks(title="Palimpsest") as app:
        gr.Markdown("# Palimpsest\nDraft legal and academic text from your own sources.")
        with gr.Tabs():
            with gr.Tab("Library", id="library"):
                build_library_tab(app, library)
    return app
