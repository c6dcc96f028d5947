"""The line under the title that says which models are still loading (engine/warmup.py).

The page is served before any model is loaded; this line polls once a second until the warm-up
has ended, then stops polling. A model that could not be loaded stays listed, with the reason.
"""

from __future__ import annotations

import gradio as gr

from engine.warmup import WarmupState
from ui.sessions import Sessions

ON_FIRST_USE = WarmupState(True, "Models load on first use.")


def status_line(state: WarmupState) -> str:
    lines = [("✓ " if state.ready else "⏳ ") + state.message]
    lines += [f"ℹ {note}." for note in state.notes]
    lines += [f"⚠ {failure}; choose another model under Settings." for failure in state.failures]
    return "\n\n".join(lines)


def build_model_status(sessions: Sessions) -> None:
    def current() -> WarmupState:
        warmup = sessions.workspaces.warmup
        return warmup.state() if warmup is not None else ON_FIRST_USE

    status = gr.Markdown("⏳ Loading the models…", elem_id="model-status")
    timer = gr.Timer(1.0)

    def refresh() -> tuple[str, gr.Timer]:
        state = current()
        return status_line(state), gr.Timer(active=not state.ready)

    timer.tick(refresh, outputs=[status, timer], show_progress="hidden", queue=False)
