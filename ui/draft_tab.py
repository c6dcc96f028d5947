"""The Draft tab: which event of which component runs which handler, with which inputs.

Layout lives in ui/draft_screen.py, what each event does in ui/draft_handlers.py; this module
only connects them. Inputs and outputs are named (`ui.events.listen`), never positional.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from ui import draft_handlers as handlers
from ui.draft_screen import DraftScreen, lay_out
from ui.events import listen
from ui.sessions import Session, Sessions

RUNS = {"concurrency_id": "drafting", "concurrency_limit": 4}
HIDDEN = {"api_visibility": "undocumented"}  # callable, but only the page needs it
# Every event the document sends counts (a focus, then an edit saved right after it), where
# Gradio's default drops an event while the previous one of its kind is still running.
EACH = {"trigger_mode": "multiple"}


@dataclass
class DraftTab:
    """What other tabs need of the Draft tab: its screen, and how to show a saved draft."""

    screen: DraftScreen

    def show(self, draft_id: str, session: Session) -> dict:
        return self.screen.apply(handlers.show(session, draft_id))

    def outputs(self) -> list:
        return self.screen.outputs()


def build_draft_tab(app: gr.Blocks, tab: gr.Tab, sessions: Sessions) -> DraftTab:
    screen = lay_out(sessions.default_model)
    wire(app, tab, screen, sessions)
    return DraftTab(screen)


def wire(app: gr.Blocks, tab: gr.Tab, screen: DraftScreen, sessions: Sessions) -> None:
    on = partial(listen, sessions, screen)
    s = screen
    draft, focus = {"draft_id": s.draft_id}, {"draft_id": s.draft_id, "focus": s.focus}
    settings = {
        name: s.component(name)
        for name in (
            "model",
            "steps",
            "block_tokens",
            "rule",
            "threshold",
            "temperature",
            "seed",
            "passages",
            "refresh_every",
            "context_cache",
            "int8",
        )
    }

    # runs
    on(
        s.start.click,
        handlers.start,
        {"instruction": s.instruction, "sections": s.sections, **settings, "follow": s.follow},
        api_name="start_draft",
        **RUNS,
    )
    on(s.step.click, handlers.step, focus, api_name="step", **RUNS)
    on(s.resume.click, handlers.resume, focus, api_name="resume", **RUNS)
    on(s.pause.click, handlers.pause, draft, outputs=(), concurrency_limit=None, api_name="pause")
    on(s.rerun.click, handlers.rerun, {**focus, "strength": s.strength}, api_name="rerun", **RUNS)
    on(
        s.retarget.click,
        handlers.retarget,
        {**focus, "targets": s.targets, "strength": s.strength},
        api_name="retarget",
        **RUNS,
    )
    on(
        s.document.submit,
        handlers.run_from_document,
        {**draft, "strength": s.strength},
        event=gr.SelectData,
        **RUNS,
        **HIDDEN,
    )

    # the document, the section panel and the page
    on(s.document.select, handlers.document_event, draft, event=gr.SelectData, **EACH, **HIDDEN)
    page = ("page", "page_caption", "page_at")
    on(
        s.panel.select,
        handlers.open_source,
        draft,
        event=gr.SelectData,
        outputs=page,
        **EACH,
        **HIDDEN,
    )
    turn = {"page_at": s.page_at}
    on(s.previous_page.click, handlers.previous_page, turn, outputs=page, api_name="previous_page")
    on(s.next_page.click, handlers.next_page, turn, outputs=page, api_name="next_page")
    on(
        s.timeline.release,
        handlers.timeline,
        {**draft, "timeline": s.timeline},
        outputs=("timeline_view",),
        api_name="timeline",
    )

    # starting a draft
    on(
        s.template.change,
        handlers.choose_template,
        {"template": s.template},
        outputs=("sections", "instruction"),
        **HIDDEN,
    )
    recipe = ("model_note", "steps", "rule", "threshold", "temperature")
    model = {"model": s.model, "block_tokens": s.block_tokens}
    on(s.model.change, handlers.model_chosen, model, outputs=recipe, **HIDDEN)
    on(app.load, handlers.page_loaded, model, outputs=(*recipe, "follow", "targets"), **HIDDEN)
    choices = ("follow", "targets")
    on(tab.select, handlers.library_choices, outputs=choices, **HIDDEN)
