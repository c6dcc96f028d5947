"""The Draft tab's layout: every component, created once and named, and nothing else.

`lay_out` places the components; `DraftScreen` holds them by name, turns a handler's changes
(keyed by these names) into Gradio's component-keyed updates, and lists outputs by name. To add
a control: create it here, give it a field, read or change it by that name in a handler
(ui/draft_handlers.py) and wire its event in ui/draft_tab.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from engine.config import DEFAULT_MODEL
from engine.draft import SETTING_RANGES, DraftSettings
from engine.families import FAST_THRESHOLD
from engine.models import DEMO_MODEL
from engine.templates import TEMPLATES
from ui.document_view import document_html
from ui.events import Changes
from ui.section_panel import panel_html

ASSETS = Path(__file__).parent / "assets"
DEMO_LABEL = "Demo model: tiny, random weights, produces meaningless text"
SCHEDULE, THRESHOLD = "Linear schedule", "Confidence threshold"
NO_TEMPLATE = "(my own sections)"
EMPTY_PAGE = '<div class="page-view"></div>'  # never empty: an empty HTML runs no script
# A page opened from a citation scrolls into view (the panel above it can push it below).
SHOW_PAGE = """new MutationObserver(() => {
    const image = element.querySelector('img');
    const column = element.closest('#evidence-column');
    if (image && column && image.getBoundingClientRect().top > window.innerHeight / 2)
        column.scrollIntoView({block: 'start'});  // sticky from there on, the page in view
}).observe(element, {childList: true, subtree: true});"""


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


@dataclass
class DraftScreen:
    status: gr.Markdown  # first: a script calling the app's API reads it as the first output
    # what the session remembers
    draft_id: gr.State
    focus: gr.State  # the section the panel shows (index), or None
    page_at: gr.State  # (doc_id, page_index, quote) of the page shown, or None
    # starting a draft
    template: gr.Dropdown
    instruction: gr.Textbox
    sections: gr.Textbox
    follow: gr.Dropdown
    # settings (named as DraftSettings' fields where they are one)
    model: gr.Dropdown
    model_note: gr.Markdown
    steps: gr.Slider
    block_tokens: gr.Slider
    rule: gr.Radio
    threshold: gr.Slider
    temperature: gr.Slider
    seed: gr.Number
    passages: gr.Slider
    refresh_every: gr.Slider
    context_cache: gr.Checkbox
    int8: gr.Checkbox
    # the run
    start: gr.Button
    pause: gr.Button
    step: gr.Button
    resume: gr.Button
    progress: gr.HTML
    # the document and the section in focus
    document: gr.HTML
    panel: gr.HTML
    strength: gr.Slider
    rerun: gr.Button
    targets: gr.Dropdown
    retarget: gr.Button
    page: gr.HTML
    page_caption: gr.Markdown
    previous_page: gr.Button
    next_page: gr.Button
    timeline: gr.Slider
    timeline_view: gr.HTML

    def component(self, name: str) -> gr.components.Component:
        if name not in self._names():
            raise KeyError(f"the Draft screen has no component {name!r}")
        return getattr(self, name)

    def apply(self, changes: Changes) -> dict:
        """A handler's changes (by name) as Gradio's updates (by component)."""
        return {self.component(name): value for name, value in changes.items()}

    def outputs(self, names: tuple[str, ...] | None = None) -> list:
        return [self.component(name) for name in (names or self._names())]

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def model_choices(default: str) -> list[tuple[str, str]]:
    choices = [(DEMO_LABEL, DEMO_MODEL), (DEFAULT_MODEL, DEFAULT_MODEL)]
    if default not in (DEMO_MODEL, DEFAULT_MODEL):
        choices.append((default, default))
    return choices


def _slider(name: str, label: str, value: float, **options) -> gr.Slider:
    limits = SETTING_RANGES[name]
    return gr.Slider(limits.low, limits.high, value=value, step=limits.step, label=label, **options)


def lay_out(default_model: str) -> DraftScreen:
    """Create the Draft tab's components inside the current Blocks context."""
    defaults = DraftSettings()
    with gr.Row():
        with gr.Column(scale=3):
            template = gr.Dropdown(
                [NO_TEMPLATE, *(t.name for t in TEMPLATES)],
                value=NO_TEMPLATE,
                label="Start from a template (its sections stay editable)",
                elem_id="template",
            )
            instruction = gr.Textbox(
                label="Instruction",
                lines=2,
                elem_id="instruction",
                placeholder="e.g. Draft the termination clauses of a services agreement, "
                "following the precedents in my library",
            )
            sections = gr.Textbox(
                label="Sections, one heading per line",
                lines=4,
                elem_id="sections",
                placeholder="Termination for convenience\nTermination for cause\nEffect of "
                "termination",
            )
            follow = gr.Dropdown(
                label="Follow these documents (every section draws only on them; none: the "
                "whole library)",
                choices=[],
                multiselect=True,
                elem_id="follow",
            )
        with gr.Column(scale=2), gr.Accordion("Settings", open=False, elem_id="settings"):
            model = gr.Dropdown(
                label="Model: a hub id, a local model folder, or the demo model",
                choices=model_choices(default_model),
                value=default_model,
                allow_custom_value=True,
                elem_id="model",
            )
            gr.Markdown(
                "<small>A hub model is downloaded once, when online. Offline, type the path of "
                "a model folder, or try the interaction with the demo model. Sampling starts "
                "from the model's published recipe (README, Model families).</small>"
            )
            model_note = gr.Markdown(elem_id="model-note")
            steps = _slider("steps", "Steps per section", defaults.steps, elem_id="steps")
            block_tokens = _slider("block_tokens", "Tokens per section", defaults.block_tokens)
            rule = gr.Radio([SCHEDULE, THRESHOLD], value=SCHEDULE, label="Commit rule")
            threshold = _slider("threshold", "Confidence threshold", FAST_THRESHOLD)
            temperature = _slider("temperature", "Temperature", defaults.temperature)
            seed = gr.Number(value=0, precision=0, label="Seed")
            passages = _slider("passages", "Passages per section", defaults.passages)
            refresh_every = _slider(
                "refresh_every",
                "Refresh retrieval every N steps (0: never)",
                defaults.refresh_every,
            )
            context_cache = gr.Checkbox(
                value=defaults.context_cache,
                label="Prefix cache (Fast-dLLM): reuse attention within a sub-block (faster)",
            )
            int8 = gr.Checkbox(
                value=defaults.int8, label="Fast on CPU: int8 weights (may change the draft)"
            )
    with gr.Row(equal_height=True):
        start = gr.Button("Start", variant="primary", elem_id="start")
        pause = gr.Button("Pause", elem_id="pause")
        step = gr.Button("Step", elem_id="step")
        resume = gr.Button("Resume", elem_id="resume")
    status = gr.Markdown(elem_id="draft-status")
    progress = gr.HTML(elem_id="draft-progress-box")
    with gr.Row():
        with gr.Column(scale=3):
            document = gr.HTML(
                document_html(None, None),
                js_on_load=asset("document.js"),
                elem_id="document",
                apply_default_css=False,
            )
            with gr.Accordion(
                "Timeline: the draft at any step, and what each step committed", open=False
            ):
                timeline = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="timeline")
                timeline_view = gr.HTML(elem_id="timeline-view")
        with gr.Column(scale=2, elem_id="evidence-column"):
            with gr.Row(elem_id="section-tools"):
                targets = gr.Dropdown(
                    label="Retarget: the documents this section follows",
                    choices=[],
                    multiselect=True,
                    scale=3,
                    elem_id="section-targets",
                )
                strength = gr.Slider(
                    0.1,
                    1.0,
                    value=1.0,
                    step=0.05,
                    label="Re-noise strength",
                    scale=2,
                    elem_id="strength",
                )
            with gr.Row():
                retarget = gr.Button("Retarget section", size="sm", elem_id="retarget")
                rerun = gr.Button("Re-run section", size="sm", elem_id="rerun")
            panel = gr.HTML(
                panel_html(None, None, None),
                js_on_load=asset("panel.js"),
                elem_id="section-panel",
            )
            page_caption = gr.Markdown(
                "Click a citation marker or a source to see its page.", elem_id="page-caption"
            )
            with gr.Row():
                previous_page = gr.Button("◀ Previous page", size="sm", elem_id="previous-page")
                next_page = gr.Button("Next page ▶", size="sm", elem_id="next-page")
            page = gr.HTML(EMPTY_PAGE, elem_id="page-image", js_on_load=SHOW_PAGE)
    return DraftScreen(
        draft_id=gr.State(None),
        focus=gr.State(None),
        page_at=gr.State(None),
        template=template,
        instruction=instruction,
        sections=sections,
        follow=follow,
        model=model,
        model_note=model_note,
        steps=steps,
        block_tokens=block_tokens,
        rule=rule,
        threshold=threshold,
        temperature=temperature,
        seed=seed,
        passages=passages,
        refresh_every=refresh_every,
        context_cache=context_cache,
        int8=int8,
        start=start,
        pause=pause,
        step=step,
        resume=resume,
        status=status,
        progress=progress,
        document=document,
        panel=panel,
        strength=strength,
        rerun=rerun,
        targets=targets,
        retarget=retarget,
        page=page,
        page_caption=page_caption,
        previous_page=previous_page,
        next_page=next_page,
        timeline=timeline,
        timeline_view=timeline_view,
    )
