"""The Draft tab: write an instruction and sections, watch every block denoise, and work on each
block (pin, unpin, edit, re-run, retarget) while its sources stay one click from the page.

Handlers load the draft from the signed-in user's store, call one engine operation and turn the
result into component values (`ui.draft_view`); the draft store is the only state shared between
them.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gradio as gr

from engine.config import DEFAULT_MODEL
from engine.draft import Draft, DraftSettings, pinned_spans
from engine.drafting import Drafter
from engine.errors import PalimpsestError
from engine.families import FAST_THRESHOLD
from engine.models import DEMO_MODEL
from engine.page_images import render_page
from engine.workspace import Workspace
from ui.draft_view import (
    SourceRow,
    block_status,
    confidence_html,
    pin_choices,
    pinned_line,
    rows_from_evidence,
    rows_from_supports,
    timeline_html,
)
from ui.library_tab import document_choices
from ui.sessions import Session, Sessions

MAX_BLOCKS = 8
SOURCE_HEADERS = ["Document", "Page", "Score", "Evidence"]
DEMO_LABEL = "Demo model: tiny, random weights, produces meaningless text"
SCHEDULE, THRESHOLD = "Linear schedule", "Confidence threshold"


@dataclass
class BlockSlot:
    """The components of one block card."""

    group: gr.Column
    header: gr.Markdown
    text: gr.Textbox
    confidence: gr.HTML
    sources: gr.Dataframe
    pins: gr.Dropdown
    rows: gr.State  # the SourceRows behind the sources table, for clicks
    selection: gr.State  # [start, end] of the text the user selected
    pin: gr.Button
    unpin: gr.Button
    save: gr.Button
    lock: gr.Checkbox
    strength: gr.Slider
    rerun: gr.Button
    targets: gr.Dropdown
    retarget: gr.Button

    def outputs(self) -> list:
        return [
            self.group,
            self.header,
            self.text,
            self.confidence,
            self.sources,
            self.pins,
            self.rows,
            self.targets,
        ]


def model_choices(default: str) -> list[tuple[str, str]]:
    choices = [(DEMO_LABEL, DEMO_MODEL), (DEFAULT_MODEL, DEFAULT_MODEL)]
    if default not in (DEMO_MODEL, DEFAULT_MODEL):
        choices.append((default, default))
    return choices


def block_values(
    workspace: Workspace, drafter: Drafter, draft: Draft, index: int, with_attribution: bool
) -> list:
    block = draft.blocks[index]
    pins = pinned_spans(drafter.tokenizer, block)
    if with_attribution and block.done and drafter.text(draft, index).strip():
        rows = rows_from_supports(workspace.sources(drafter, draft, index))
    else:
        rows = rows_from_evidence(block.evidence)
    return [
        gr.update(visible=True),
        block_status(draft, index) + pinned_line(pins),
        drafter.text(draft, index) if block.done else _text_with_masks(drafter, draft, index),
        confidence_html(drafter.tokenizer, draft, index),
        [row.cells() for row in rows],
        gr.update(choices=pin_choices(pins), value=None),
        rows,
        gr.update(value=list(block.targets)),
    ]


def _text_with_masks(drafter: Drafter, draft: Draft, index: int) -> str:
    return drafter.view(draft, index).text


def hidden_block() -> list:
    return [
        gr.update(visible=False),
        "",
        "",
        "",
        [],
        gr.update(choices=[], value=None),
        [],
        gr.update(value=[]),
    ]


def overall_progress(draft: Draft) -> str:
    done = sum(b.step for b in draft.blocks)
    total = sum(b.steps_total for b in draft.blocks) or 1
    finished = sum(b.done for b in draft.blocks)
    state = (
        f"all {finished} blocks done"
        if draft.done
        else f"step {draft.step} · {finished}/{len(draft.blocks)} blocks done"
    )
    return (
        f'<div id="draft-progress"><progress max="{total}" value="{done}"></progress> {state}</div>'
    )


@dataclass
class DraftTab:
    """What other tabs need of the Draft tab: the session's draft and how to show one."""

    draft_id: gr.State
    outputs: list  # the components `show` fills, in order (the blocks, instruction, sections)
    show: Callable[[str, Session], list]  # draft id -> values for `outputs`
    instruction: gr.Textbox
    sections: gr.Textbox


def build_draft_tab(app: gr.Blocks, tab: gr.Tab, sessions: Sessions) -> DraftTab:
    """Lay out the Draft tab in `app` and wire it."""
    draft_id = gr.State(None)
    with gr.Row():
        with gr.Column(scale=3):
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
        with gr.Column(scale=2), gr.Accordion("Settings", open=False, elem_id="settings"):
            model = gr.Dropdown(
                label="Model: a hub id, a local model folder, or the demo model",
                choices=model_choices(sessions.default_model),
                value=sessions.default_model,
                allow_custom_value=True,
                elem_id="model",
            )
            gr.Markdown(
                "<small>A hub model is downloaded once, when online. Offline, type the path of "
                "a model folder, or try the interaction with the demo model.</small>"
            )
            model_note = gr.Markdown(elem_id="model-note")
            gr.Markdown(
                "<small>Sampling starts from the chosen model's published recipe (README, "
                "Model families); change any of it here.</small>"
            )
            defaults = DraftSettings()
            steps = gr.Slider(
                1, 256, value=defaults.steps, step=1, label="Steps per block", elem_id="steps"
            )
            block_tokens = gr.Slider(
                8, 256, value=defaults.block_tokens, step=8, label="Tokens per block"
            )
            schedule = gr.Radio([SCHEDULE, THRESHOLD], value=SCHEDULE, label="Commit rule")
            threshold = gr.Slider(
                0.5, 1.0, value=FAST_THRESHOLD, step=0.01, label="Confidence threshold"
            )
            temperature = gr.Slider(
                0.0, 2.0, value=defaults.temperature, step=0.05, label="Temperature"
            )
            seed = gr.Number(value=0, precision=0, label="Seed")
            passages = gr.Slider(0, 8, value=defaults.passages, step=1, label="Passages per block")
            refresh = gr.Slider(
                0,
                16,
                value=defaults.refresh_every,
                step=1,
                label="Refresh retrieval every N steps (0: never)",
            )
            context_cache = gr.Checkbox(
                value=defaults.context_cache,
                label="Prefix cache (Fast-dLLM): reuse attention within a sub-block (faster)",
            )
            int8 = gr.Checkbox(
                value=defaults.int8,
                label="Fast on CPU: int8 weights (may change the draft)",
            )
    with gr.Row(equal_height=True):
        start = gr.Button("Start", variant="primary", elem_id="start")
        pause = gr.Button("Pause", elem_id="pause")
        step_once = gr.Button("Step", elem_id="step")
        resume = gr.Button("Resume", elem_id="resume")
    status = gr.Markdown(elem_id="draft-status")
    progress = gr.HTML(elem_id="draft-progress-box")
    with gr.Accordion("Timeline: the draft at any earlier step", open=False):
        timeline = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="timeline")
        timeline_view = gr.HTML(elem_id="timeline-view")

    slots: list[BlockSlot] = []
    with gr.Row():
        with gr.Column(scale=3):
            for i in range(MAX_BLOCKS):
                slots.append(_block_card(i))
        with gr.Column(scale=2, elem_id="evidence-column"):
            gr.Markdown("### Evidence")
            evidence_caption = gr.Markdown(
                "Click a source of a block to see its page.", elem_id="evidence-caption"
            )
            evidence_image = gr.HTML(elem_id="evidence-image")
            with gr.Row():
                previous_page = gr.Button("◀ Previous page", size="sm")
                next_page = gr.Button("Next page ▶", size="sm")
            evidence_at = gr.State(None)  # (doc_id, page_index, quote)

    view_outputs = [status, progress, timeline, draft_id]
    for slot in slots:
        view_outputs += slot.outputs()

    def render(
        workspace: Workspace | None,
        draft: Draft | None,
        drafter: Drafter | None,
        message: str,
        attribution: bool = False,
    ) -> list:
        if workspace is None or draft is None or drafter is None:
            return [message, "", gr.update(), gr.update()] + hidden_block() * MAX_BLOCKS
        values = [
            message,
            overall_progress(draft),
            gr.update(maximum=max(draft.step, 1), value=draft.step),
            draft.draft_id,
        ]
        for i in range(MAX_BLOCKS):
            values += (
                block_values(workspace, drafter, draft, i, attribution)
                if i < len(draft.blocks)
                else hidden_block()
            )
        return values

    def stream(
        session: Session,
        draft: Draft,
        drafter: Drafter,
        only: list[int] | None = None,
        stop_after: int | None = None,
    ) -> Iterator[list]:
        workspace = session.workspace
        with (
            session.runs.running(draft.draft_id) as pause_requested,
            session.workspace.running(draft.draft_id),  # block operations refuse it meanwhile
        ):
            yield render(workspace, draft, drafter, "Drafting…")
            for event in drafter.run(
                draft, only=only, stop_after=stop_after, should_stop=pause_requested.is_set
            ):
                yield render(workspace, draft, drafter, f"Drafting… step {event.step}")
            paused = pause_requested.is_set() and not draft.done
        message = (
            "Done." if draft.done else ("Paused." if paused else f"Stopped at step {draft.step}.")
        )
        if draft.settings.model == DEMO_MODEL:
            message += f" ({DEMO_LABEL.lower()})"
        yield render(workspace, draft, drafter, message, attribution=True)

    def guarded(handler):
        """Run a streaming handler; a PalimpsestError becomes the status line, nothing else.
        (`wraps` keeps the handler's signature, which tells Gradio to pass the request.)"""

        @functools.wraps(handler)
        def wrapped(*args):
            try:
                yield from handler(*args)
            except PalimpsestError as error:
                yield [f"**Cannot do that:** {error}"] + [gr.update()] * (len(view_outputs) - 1)

        return wrapped

    def open_current(session: Session, current: str | None) -> tuple[Draft, Drafter]:
        if not current:
            raise PalimpsestError("start a draft first, or open one from the Drafts tab")
        return session.workspace.open(current)

    @guarded
    def on_start(
        text,
        headings,
        model_name,
        n_steps,
        n_tokens,
        rule,
        tau,
        temp,
        seed_value,
        n_passages,
        every,
        cache_context,
        use_int8,
        request: gr.Request,
    ):
        session = sessions(request)
        model_name = model_name or sessions.default_model
        heading_list = [h.strip() for h in (headings or "").splitlines() if h.strip()]
        if len(heading_list) > MAX_BLOCKS:
            raise PalimpsestError(f"at most {MAX_BLOCKS} sections per draft on this screen")
        if not session.workspace.denoisers.loaded(model_name, bool(use_int8)):
            yield render(None, None, None, f"Loading the model {model_name}…")
        drafter = session.workspace.drafter(model_name, bool(use_int8))
        settings = DraftSettings.from_recipe(
            drafter.denoiser.family.recipe,
            model=model_name,
            steps=int(n_steps),
            block_tokens=int(n_tokens),
            passages=int(n_passages),
            refresh_every=int(every),
            temperature=float(temp),
            threshold=float(tau) if rule == THRESHOLD else None,
            context_cache=bool(cache_context),
            int8=bool(use_int8),
        )
        draft = drafter.start(text or "", heading_list, settings, seed=int(seed_value or 0))
        yield from stream(session, draft, drafter)

    @guarded
    def on_step(current, request: gr.Request):
        session = sessions(request)
        draft, drafter = open_current(session, current)
        yield from stream(session, draft, drafter, stop_after=1)

    @guarded
    def on_resume(current, request: gr.Request):
        session = sessions(request)
        draft, drafter = open_current(session, current)
        yield from stream(session, draft, drafter)

    def on_pause(current, request: gr.Request):
        if current and sessions(request).runs.pause(current):
            return "Pausing after the step in flight…"
        return "Nothing is running."

    def on_timeline(current, at, request: gr.Request):
        if not current:
            return ""
        workspace = sessions(request).workspace
        try:
            draft, drafter = workspace.open(current)
        except PalimpsestError as error:
            return html.escape(str(error))
        at = int(at)
        return timeline_html(drafter.tokenizer, draft, workspace.drafts.snapshot(current, at), at)

    def model_estimate(model_name: str, request: gr.Request) -> str:
        """The model's family and whether it fits this machine, and how fast (no loading)."""
        denoisers = sessions(request).workspace.denoisers
        family = denoisers.family(model_name or "")
        budget = denoisers.budget(model_name) if family is not None else None
        return f"<small>{family.name}. {budget.message}</small>" if budget else ""

    def on_model(model_name: str, n_tokens: float, request: gr.Request):
        """Fill the sampling controls from the chosen model family's recipe."""
        family = sessions(request).workspace.denoisers.family(model_name or "")
        note = model_estimate(model_name, request)
        if family is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), note
        recipe = family.recipe
        rule = THRESHOLD if recipe.threshold is not None else SCHEDULE
        tau = recipe.threshold if recipe.threshold is not None else gr.skip()
        return recipe.steps_for(int(n_tokens)), rule, tau, recipe.temperature, note

    model.change(
        on_model,
        inputs=[model, block_tokens],
        outputs=[steps, schedule, threshold, temperature, model_note],
        api_visibility="undocumented",
    )

    def on_load(model_name: str, n_tokens: float, request: gr.Request):
        """The estimate, and the recipe only where it differs from the controls' defaults
        (BERT-chat's): filling them regardless would race with, and undo, a value the user sets
        while the page loads."""
        values = on_model(model_name, n_tokens, request)
        family = sessions(request).workspace.denoisers.family(model_name or "")
        if family is None or DraftSettings.from_recipe(family.recipe) == DraftSettings():
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), values[-1]
        return values

    app.load(
        on_load,
        inputs=[model, block_tokens],
        outputs=[steps, schedule, threshold, temperature, model_note],
        api_visibility="undocumented",
    )

    start.click(
        on_start,
        inputs=[
            instruction,
            sections,
            model,
            steps,
            block_tokens,
            schedule,
            threshold,
            temperature,
            seed,
            passages,
            refresh,
            context_cache,
            int8,
        ],
        outputs=view_outputs,
        concurrency_limit=4,
        concurrency_id="drafting",
        api_name="start_draft",
    )
    step_once.click(
        on_step, inputs=draft_id, outputs=view_outputs, concurrency_id="drafting", api_name="step"
    )
    resume.click(
        on_resume,
        inputs=draft_id,
        outputs=view_outputs,
        concurrency_id="drafting",
        api_name="resume",
    )
    pause.click(on_pause, inputs=draft_id, outputs=status, concurrency_limit=None, api_name="pause")
    timeline.release(
        on_timeline, inputs=[draft_id, timeline], outputs=timeline_view, api_name="timeline"
    )

    def on_source_click(rows: list[SourceRow], event: gr.SelectData, request: gr.Request):
        row = rows[event.index[0]] if rows and event.index[0] < len(rows) else None
        if row is None:
            return gr.update(), gr.update(), None
        return _evidence(sessions(request).workspace, row.doc_id, row.page_index, row.quote)

    def wire(index: int, slot: BlockSlot) -> None:
        """The per-block operations; each refuses to touch a draft that is running."""

        Operation = Callable[[Workspace, str], tuple[Draft, Drafter]]

        def draft_id_of(current: str | None) -> str:
            if not current:
                raise PalimpsestError("start a draft first, or open one from the Drafts tab")
            return current

        def changed(request: gr.Request, current: str | None, operation: Operation) -> list:
            session = sessions(request)
            draft, drafter = operation(session.workspace, draft_id_of(current))
            return render(session.workspace, draft, drafter, "Saved.", attribution=True)

        def redrafted(request: gr.Request, current: str | None, operation: Operation):
            session = sessions(request)
            draft, drafter = operation(session.workspace, draft_id_of(current))
            yield from stream(session, draft, drafter, only=[index])

        @guarded
        def on_pin(current, selection, request: gr.Request):
            if not selection:
                raise PalimpsestError("select some text of the block first, then press Pin")
            start, end = selection
            yield changed(request, current, lambda ws, d: ws.pin(d, index, start, end))

        @guarded
        def on_unpin(current, chosen, request: gr.Request):
            if not chosen:
                raise PalimpsestError("choose a pinned passage to unpin")
            start, end = map(int, chosen.split(":"))
            yield changed(request, current, lambda ws, d: ws.unpin(d, index, start, end))

        @guarded
        def on_save(current, text, lock, request: gr.Request):
            yield changed(request, current, lambda ws, d: ws.edit(d, index, text or "", bool(lock)))

        @guarded
        def on_rerun(current, strength, request: gr.Request):
            yield from redrafted(
                request, current, lambda ws, d: ws.rerun(d, index, float(strength))
            )

        @guarded
        def on_retarget(current, doc_ids, strength, request: gr.Request):
            targets = list(doc_ids or [])
            yield from redrafted(
                request, current, lambda ws, d: ws.retarget(d, index, targets, float(strength))
            )

        def on_select(event: gr.SelectData):
            return list(event.index) if isinstance(event.index, list | tuple) else None

        hidden = "undocumented"  # callable, but only the page needs it
        slot.text.select(on_select, outputs=slot.selection, api_visibility=hidden)
        slot.pin.click(
            on_pin,
            inputs=[draft_id, slot.selection],
            outputs=view_outputs,
            api_name=f"pin_{index}",
        )
        slot.unpin.click(
            on_unpin, inputs=[draft_id, slot.pins], outputs=view_outputs, api_name=f"unpin_{index}"
        )
        slot.save.click(
            on_save,
            inputs=[draft_id, slot.text, slot.lock],
            outputs=view_outputs,
            api_name=f"edit_{index}",
        )
        slot.rerun.click(
            on_rerun,
            inputs=[draft_id, slot.strength],
            outputs=view_outputs,
            concurrency_id="drafting",
            api_name=f"rerun_{index}",
        )
        slot.retarget.click(
            on_retarget,
            inputs=[draft_id, slot.targets, slot.strength],
            outputs=view_outputs,
            concurrency_id="drafting",
            api_name=f"retarget_{index}",
        )
        slot.sources.select(
            on_source_click,
            inputs=slot.rows,
            outputs=[evidence_image, evidence_caption, evidence_at],
            api_visibility=hidden,
        )

    for index, slot in enumerate(slots):
        wire(index, slot)

    def turned(at, delta: int, request: gr.Request):
        if not at:
            return gr.update(), "Click a source of a block to see its page.", at
        workspace = sessions(request).workspace
        doc_id, page_index, quote = at
        record = workspace.library.document(doc_id)
        target = page_index + delta
        if record is None or not 0 <= target < record.pages:
            return gr.update(), gr.update(), at
        return _evidence(workspace, doc_id, target, quote if delta == 0 else "")

    def on_previous_page(at, request: gr.Request):
        return turned(at, -1, request)

    def on_next_page(at, request: gr.Request):
        return turned(at, 1, request)

    evidence_outputs = [evidence_image, evidence_caption, evidence_at]
    previous_page.click(
        on_previous_page, inputs=evidence_at, outputs=evidence_outputs, api_name="previous_page"
    )
    next_page.click(
        on_next_page, inputs=evidence_at, outputs=evidence_outputs, api_name="next_page"
    )

    def refresh_targets(request: gr.Request):
        choices = document_choices(sessions(request).workspace.library)
        return [gr.update(choices=choices) for _ in slots]

    targets = [slot.targets for slot in slots]
    app.load(refresh_targets, outputs=targets, api_visibility="undocumented")
    tab.select(refresh_targets, outputs=targets, api_visibility="undocumented")

    def show(current: str, session: Session) -> list:
        draft, drafter = session.workspace.open(current)
        state = "Done." if draft.done else f"Opened at step {draft.step}: press Resume to go on."
        headings = "\n".join(block.heading for block in draft.blocks)
        values = render(session.workspace, draft, drafter, state, attribution=True)
        return values + [draft.instruction, headings]

    return DraftTab(draft_id, [*view_outputs, instruction, sections], show, instruction, sections)


def _evidence(workspace: Workspace, doc_id: str, page_index: int, quote: str):
    record = workspace.library.document(doc_id)
    page = workspace.library.page(doc_id, page_index)
    if record is None or page is None:
        return None, "That document is no longer in the library.", None
    image, found = render_page(workspace.library.pdf_path(doc_id), page_index, quote, ocr=page.ocr)
    note = "" if found or not quote else " (the quoted passage could not be located on the image)"
    if page.low_confidence:
        note += f" (read by OCR with low confidence, {page.ocr.confidence:.2f}: check the scan)"
    caption = (
        f"**{html.escape(record.filename)}** · page {html.escape(page.page_label)} "
        f"(physical {page_index + 1} of {record.pages}){note}"
    )
    return _inline_image(image, f"page {page_index + 1}"), caption, (doc_id, page_index, quote)


def _inline_image(image, alt: str) -> str:
    """The image inside the page itself (a data URI): a page of a user's document never becomes
    a file on a route another request could fetch."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="width:100%">'


def _block_card(index: int) -> BlockSlot:
    def eid(name: str) -> str:
        return f"block-{index}-{name}"

    with gr.Column(visible=False, variant="panel", elem_id=f"block-{index}") as group:
        header = gr.Markdown(elem_id=eid("header"))
        with gr.Tabs():
            with gr.Tab("Text"):
                text = gr.Textbox(show_label=False, lines=4, interactive=True, elem_id=eid("text"))
            with gr.Tab("Confidence"):
                confidence = gr.HTML(elem_id=eid("confidence"))
        with gr.Row(elem_classes="block-tools"):
            pin = gr.Button("Pin selection", size="sm", min_width=90, elem_id=eid("pin"))
            pins = gr.Dropdown(label="Pinned", choices=[], scale=2, elem_id=eid("pins"))
            unpin = gr.Button("Unpin", size="sm", min_width=70, elem_id=eid("unpin"))
            save = gr.Button("Save my edit", size="sm", min_width=90, elem_id=eid("save"))
            lock = gr.Checkbox(
                label="Lock my edits", value=False, min_width=90, elem_id=eid("lock")
            )
        with gr.Row(elem_classes="block-tools"):
            strength = gr.Slider(
                0.1,
                1.0,
                value=1.0,
                step=0.05,
                label="Re-noise strength",
                min_width=140,
                elem_id=eid("strength"),
            )
            rerun = gr.Button("Re-run block", size="sm", min_width=90, elem_id=eid("rerun"))
            targets = gr.Dropdown(
                label="Retarget to documents",
                choices=[],
                multiselect=True,
                scale=2,
                elem_id=eid("targets"),
            )
            retarget = gr.Button("Retarget", size="sm", min_width=80, elem_id=eid("retarget"))
        sources = gr.Dataframe(
            headers=SOURCE_HEADERS,
            interactive=False,
            wrap=True,
            label="Sources (click one to see the page)",
            column_widths=["26%", "8%", "9%", "57%"],
            max_height=260,
            elem_id=eid("sources"),
        )
    return BlockSlot(
        group,
        header,
        text,
        confidence,
        sources,
        pins,
        gr.State([]),
        gr.State(None),
        pin,
        unpin,
        save,
        lock,
        strength,
        rerun,
        targets,
        retarget,
    )
