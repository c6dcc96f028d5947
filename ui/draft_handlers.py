"""What each event of the Draft tab does: thin adapters from an event to one engine call.

Every handler takes the signed-in user's `Session` and its inputs by name, calls the engine
(a `Workspace` transaction for block operations, `Drafter.run` for runs) and returns, or streams,
the changes to the screen keyed by component name (`ui.draft_screen.DraftScreen`). They hold no
state: the draft store is the only state shared between events. The views they return are
drawn from stored state (ui/document_view.py, ui/section_panel.py); nothing here attributes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from engine.draft import Draft, DraftError, DraftSettings
from engine.draft_editor import DraftEditor
from engine.drafting import Drafter
from engine.errors import PalimpsestError
from engine.models import DEMO_MODEL
from engine.page_images import render_page
from engine.templates import template as find_template
from engine.workspace import Workspace
from ui.document_view import document_html, progress_html
from ui.document_view import timeline_html as draw_timeline
from ui.draft_screen import DEMO_LABEL, EMPTY_PAGE, NO_TEMPLATE, THRESHOLD
from ui.events import Changes
from ui.library_tab import document_choices
from ui.section_panel import panel_html
from ui.sessions import Session

NO_PAGE = "Click a citation marker or a source to see its page."


# -- views ---------------------------------------------------------------------------------------


def draft_view(
    draft: Draft, editor: DraftEditor, focus: int | None, status: str, running: bool = False
) -> Changes:
    """Everything the screen shows of a draft, from its stored state."""
    if focus is not None and not 0 <= focus < len(draft.blocks):
        focus = None
    changes: Changes = {
        "status": status,
        "progress": progress_html(draft),
        "document": document_html(editor.tokenizer, draft, running),
        "panel": panel_html(editor.tokenizer, draft, focus),
        "timeline": gr.update(maximum=max(draft.step, 1), value=draft.step),
        "draft_id": draft.draft_id,
        "focus": focus,
    }
    if focus is not None:
        changes["targets"] = gr.update(value=list(draft.blocks[focus].targets))
    return changes


def _inline_image(image, alt: str) -> str:
    """The image inside the page itself (a data URI): a page of a user's document never becomes
    a file on a route another request could fetch."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="width:100%">'


def page_view(workspace: Workspace, doc_id: str, page_index: int, quote: str) -> Changes:
    """A page of a document, the quote highlighted, and its caption."""
    record = workspace.library.document(doc_id)
    page = workspace.library.page(doc_id, page_index)
    if record is None or page is None:
        return {"page": EMPTY_PAGE, "page_caption": "That document is no longer in the library."}
    image, found = render_page(workspace.library.pdf_path(doc_id), page_index, quote, ocr=page.ocr)
    note = "" if found or not quote else " (the quoted passage could not be located on the image)"
    if page.low_confidence:
        note += f" (read by OCR with low confidence, {page.ocr.confidence:.2f}: check the scan)"
    caption = (
        f"**{html.escape(record.filename)}** · page {html.escape(page.page_label)} "
        f"(physical {page_index + 1} of {record.pages}){note}"
    )
    return {
        "page": _inline_image(image, f"page {page_index + 1}"),
        "page_caption": caption,
        "page_at": (doc_id, page_index, quote),
    }


# -- runs ----------------------------------------------------------------------------------------


def _stream(
    session: Session,
    draft: Draft,
    drafter: Drafter,
    focus: int | None,
    only: list[int] | None = None,
    stop_after: int | None = None,
) -> Iterator[Changes]:
    with (
        session.runs.running(draft.draft_id) as pause_requested,
        session.workspace.running(draft.draft_id),  # block operations refuse it meanwhile
    ):
        yield draft_view(draft, drafter, focus, "Drafting…", running=True)
        for event in drafter.run(
            draft, only=only, stop_after=stop_after, should_stop=pause_requested.is_set
        ):
            status = f"Drafting… step {event.step} (Pause stops after the step in flight)"
            yield draft_view(draft, drafter, focus, status, running=True)
        paused = pause_requested.is_set() and not draft.done
    message = "Done." if draft.done else ("Paused." if paused else f"Stopped at step {draft.step}.")
    if draft.settings.model == DEMO_MODEL:
        message += f" ({DEMO_LABEL.lower()})"
    yield draft_view(draft, drafter, focus, message)


def _required(draft_id: str | None) -> str:
    if not draft_id:
        raise DraftError("start a draft first, or open one from the Drafts tab")
    return draft_id


def _opened(session: Session, draft_id: str | None) -> tuple[Draft, DraftEditor]:
    """The draft to show or edit: its model's tokenizer is all that is loaded."""
    return session.workspace.open(_required(draft_id))


def _opened_to_run(session: Session, draft_id: str | None) -> tuple[Draft, Drafter]:
    return session.workspace.open_to_run(_required(draft_id))


def start(
    session: Session,
    instruction: str,
    sections: str,
    follow: list[str] | None,
    model: str,
    steps: float,
    block_tokens: float,
    rule: str,
    threshold: float,
    temperature: float,
    seed: float | None,
    passages: float,
    refresh_every: float,
    context_cache: bool,
    int8: bool,
) -> Iterator[Changes]:
    model = model or session.workspace.settings.model
    if not session.workspace.denoisers.loaded(model, bool(int8)):
        yield {"status": f"Loading the model {model}…"}
    drafter = session.workspace.drafter(model, bool(int8))
    settings = DraftSettings.from_recipe(
        drafter.denoiser.family.recipe,
        model=model,
        steps=int(steps),
        block_tokens=int(block_tokens),
        passages=int(passages),
        refresh_every=int(refresh_every),
        temperature=float(temperature),
        threshold=float(threshold) if rule == THRESHOLD else None,
        context_cache=bool(context_cache),
        int8=bool(int8),
    )
    headings = (sections or "").splitlines()
    draft = drafter.start(
        instruction or "", headings, settings, seed=int(seed or 0), follow=list(follow or [])
    )
    yield from _stream(session, draft, drafter, focus=0)


def step(session: Session, draft_id: str | None, focus: int | None) -> Iterator[Changes]:
    draft, drafter = _opened_to_run(session, draft_id)
    yield from _stream(session, draft, drafter, focus, stop_after=1)


def resume(session: Session, draft_id: str | None, focus: int | None) -> Iterator[Changes]:
    draft, drafter = _opened_to_run(session, draft_id)
    yield from _stream(session, draft, drafter, focus)


def pause(session: Session, draft_id: str | None) -> Changes:
    """Ask the run to stop after the step in flight; the run itself then says "Paused." (a
    status written here could arrive after that, and overwrite it)."""
    if draft_id and session.runs.pause(draft_id):
        return {}
    return {"status": "Nothing is running."}


def _redraft(
    session: Session, draft_id: str | None, block: int, change: Callable[[Workspace, str], Any]
) -> Iterator[Changes]:
    """Re-noise one block (a Workspace transaction), then stream its redrafting alone."""
    draft, drafter = change(session.workspace, _required(draft_id))
    yield from _stream(session, draft, drafter, block, only=[block])


def _focused(focus: int | None) -> int:
    if focus is None:
        raise DraftError("click a section of the draft first")
    return int(focus)


def rerun(
    session: Session, draft_id: str | None, focus: int | None, strength: float
) -> Iterator[Changes]:
    block = _focused(focus)
    yield from _redraft(session, draft_id, block, lambda ws, d: ws.rerun(d, block, strength))


def retarget(
    session: Session,
    draft_id: str | None,
    focus: int | None,
    targets: list[str] | None,
    strength: float,
) -> Iterator[Changes]:
    block = _focused(focus)
    doc_ids = list(targets or [])
    yield from _redraft(
        session, draft_id, block, lambda ws, d: ws.retarget(d, block, doc_ids, strength)
    )


def run_from_document(
    session: Session, draft_id: str | None, strength: float, event: gr.SelectData
) -> Iterator[Changes]:
    """A run asked for from the document's toolbar or keyboard (re-run this section); the
    document sends it as {index: section, value: {op}}, the shape of a selection."""
    if (event.value or {}).get("op") != "rerun":
        raise DraftError("unknown request from the document")
    block = int(event.index)
    yield from _redraft(session, draft_id, block, lambda ws, d: ws.rerun(d, block, strength))


# -- operations on the document's text ----------------------------------------------------------

TextOperation = Callable[[Workspace, str, int, dict], tuple[Draft, DraftEditor]]
TEXT_OPERATIONS: dict[str, tuple[TextOperation, str]] = {
    "pin": (lambda ws, d, b, v: ws.pin(d, b, int(v["start"]), int(v["end"])), "Pinned."),
    "unpin": (lambda ws, d, b, v: ws.unpin(d, b, int(v["start"]), int(v["end"])), "Unpinned."),
    "edit": (lambda ws, d, b, v: ws.edit(d, b, str(v["text"])), "Saved your edit."),
    "accept": (lambda ws, d, b, v: ws.accept(d, b), "Change accepted."),
    "reject": (lambda ws, d, b, v: ws.reject(d, b), "Change rejected."),
}


def document_event(session: Session, draft_id: str | None, event: gr.SelectData) -> Changes:
    """What the document sends: a section in focus, a citation opened, or an operation on a
    section's text (pin, unpin, edit, accept or reject its tracked change)."""
    block, value = int(event.index), dict(event.value or {})
    op = value.get("op")
    if op in ("focus", "cite"):
        draft, editor = _opened(session, draft_id)
        if op == "focus":
            return _focus(draft, editor, block)
        return _cite(session, draft, editor, block, int(value["sentence"]))
    if op not in TEXT_OPERATIONS:
        raise DraftError(f"unknown operation {op!r}")
    operation, done = TEXT_OPERATIONS[op]
    draft, editor = operation(session.workspace, _required(draft_id), block, value)
    return draft_view(draft, editor, block, done)


def _focus(draft: Draft, editor: DraftEditor, block: int) -> Changes:
    if not 0 <= block < len(draft.blocks):
        raise DraftError(f"the draft has no section {block + 1}")
    return {
        "focus": block,
        "panel": panel_html(editor.tokenizer, draft, block),
        "targets": gr.update(value=list(draft.blocks[block].targets)),
    }


def _cite(
    session: Session, draft: Draft, editor: DraftEditor, block: int, sentence: int
) -> Changes:
    citations = draft.blocks[block].citations if 0 <= block < len(draft.blocks) else None
    if citations is None or not 0 <= sentence < len(citations.sentences):
        raise DraftError("that citation is out of date: the section changed since")
    cited = citations.sentences[sentence].citations
    if not cited:
        raise DraftError("no passage supports that sentence")
    first = cited[0]
    return {
        **_focus(draft, editor, block),
        **page_view(session.workspace, first.hit.doc_id, first.hit.page_index, first.quote()),
    }


# -- the section panel and the page ------------------------------------------------------------


def open_source(session: Session, draft_id: str | None, event: gr.SelectData) -> Changes:
    """A source clicked in the section panel: what supports the text, or what the model read."""
    draft, _ = _opened(session, draft_id)
    value = dict(event.value or {})
    block = draft.blocks[int(event.index)]
    kind = value.get("kind")
    if kind == "support" and block.citations is not None:
        sentence = block.citations.sentences[int(value["sentence"])]
        citation = sentence.citations[int(value["citation"])]
        return page_view(
            session.workspace, citation.hit.doc_id, citation.hit.page_index, citation.quote()
        )
    if kind == "read":
        hit = block.evidence[int(value["hit"])]
        return page_view(session.workspace, hit.doc_id, hit.page_index, hit.text)
    if kind == "round":
        source = block.read[int(value["round"])].sources[int(value["source"])]
        found = session.workspace.library.catalog.ready_chunks_by_id([source.chunk_id])
        quote = found[source.chunk_id][0].text if source.chunk_id in found else ""
        return page_view(session.workspace, source.doc_id, source.page_index, quote)
    raise DraftError("that source is out of date: the section changed since")


def _turn(session: Session, page_at: tuple | None, delta: int) -> Changes:
    if not page_at:
        return {"page_caption": NO_PAGE}
    doc_id, page_index, quote = page_at
    record = session.workspace.library.document(doc_id)
    target = page_index + delta
    if record is None or not 0 <= target < record.pages:
        return {}
    return page_view(session.workspace, doc_id, target, quote if delta == 0 else "")


def previous_page(session: Session, page_at: tuple | None) -> Changes:
    return _turn(session, page_at, -1)


def next_page(session: Session, page_at: tuple | None) -> Changes:
    return _turn(session, page_at, 1)


def timeline(session: Session, draft_id: str | None, timeline: float) -> Changes:
    draft, editor = _opened(session, draft_id)
    at = int(timeline)
    canvases = session.workspace.drafts.snapshot(draft.draft_id, at)
    return {"timeline_view": draw_timeline(editor.tokenizer, draft, canvases, at)}


# -- starting a draft ------------------------------------------------------------------------


def choose_template(session: Session, template: str) -> Changes:
    """Fill the sections (and an empty instruction's example) from a template."""
    if not template or template == NO_TEMPLATE:
        return {}
    chosen = find_template(template)
    return {
        "sections": "\n".join(chosen.headings),
        "instruction": gr.update(placeholder=chosen.instruction),
    }


def library_choices(session: Session) -> Changes:
    choices = document_choices(session.workspace.library)
    return {"follow": gr.update(choices=choices), "targets": gr.update(choices=choices)}


def model_note(session: Session, model: str) -> str:
    """The model's family and whether it fits this machine, and how fast (no loading)."""
    denoisers = session.workspace.denoisers
    family = denoisers.family(model or "")
    budget = denoisers.budget(model) if family is not None else None
    return f"<small>{family.name}. {budget.message}</small>" if budget else ""


def model_chosen(session: Session, model: str, block_tokens: float) -> Changes:
    """Fill the sampling controls from the chosen model family's recipe."""
    family = session.workspace.denoisers.family(model or "")
    changes: Changes = {"model_note": model_note(session, model)}
    if family is None:
        return changes
    recipe = family.recipe
    changes.update(
        steps=recipe.steps_for(int(block_tokens)),
        rule=THRESHOLD if recipe.threshold is not None else "Linear schedule",
        temperature=recipe.temperature,
    )
    if recipe.threshold is not None:
        changes["threshold"] = recipe.threshold
    return changes


def page_loaded(session: Session, model: str, block_tokens: float) -> Changes:
    """The documents to follow, the model's estimate, and its recipe only where it differs from
    the controls' defaults (BERT-chat's): filling them regardless would race with, and undo, a
    value the user sets while the page loads."""
    changes = {**library_choices(session), "model_note": model_note(session, model)}
    family = session.workspace.denoisers.family(model or "")
    if family is not None and DraftSettings.from_recipe(family.recipe) != DraftSettings():
        changes.update(model_chosen(session, model, block_tokens))
    return changes


def show(session: Session, draft_id: str) -> Changes:
    """A saved draft opened from the Drafts tab: the document, and what it was started with."""
    try:
        draft, editor = session.workspace.open(draft_id)
    except PalimpsestError as error:
        return {"status": str(error)}
    state = "Done." if draft.done else f"Opened at step {draft.step}: press Resume to go on."
    return {
        **draft_view(draft, editor, None, state),
        "instruction": draft.instruction,
        "sections": "\n".join(block.heading for block in draft.blocks),
        "page": EMPTY_PAGE,
        "page_caption": NO_PAGE,
        "page_at": None,
        "timeline_view": "",
    }
