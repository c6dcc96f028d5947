"""A draft -> the HTML of one continuous document, and of the timeline's white-box view.

Pure functions over stored draft state: no Gradio, no engine calls beyond decoding tokens, no
attribution (citations are read from the draft, where they were stored when the text changed).

A section's text is drawn character by character from `text_and_spans`, so the characters the
browser shows are exactly the block's text (masks shown as ▒): the page's script maps a selection
back to character offsets by counting them, skipping only what is marked `data-skip` (deleted
text of a tracked change, citation markers). Every piece of model or document text is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from engine.draft import MASK_GLYPH, Block, Draft, text_and_spans
from engine.sampler import Canvas

# What a character of a section's text is, as bits (a pinned character may also be inserted).
MASKED, PINNED, INSERTED, UNSUPPORTED, FRESH = 1, 2, 4, 8, 16
CLASSES = ((MASKED, "mask"), (PINNED, "pin"), (INSERTED, "ins"), (UNSUPPORTED, "unsup"))
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Insert:
    """Markup placed before character `at` of a section's text, not part of the text."""

    at: int
    html: str


def section_state(block: Block) -> tuple[str, str]:
    """(state key, words) for a section: done, drafting or waiting."""
    if block.done:
        return "done", "done"
    if block.step == 0:
        return "waiting", "waiting"
    return "drafting", f"{block.canvas.n_masked} tokens still masked"


def section_meta(block: Block) -> str:
    state = section_state(block)[1]
    limited = f" · follows {len(block.targets)} document(s)" if block.targets else ""
    change = " · tracked change" if block.redline is not None and block.done else ""
    return f"step {block.step}/{block.steps_total} · {state}{limited}{change}"


def fresh_citations(block: Block, text: str):
    """The block's stored sentence citations when they describe `text`, else None."""
    if block.citations is not None and block.citations.text == text and block.done:
        return block.citations
    return None


def changed_ranges(before: str, after: str) -> tuple[list[tuple[int, int]], list[Insert]]:
    """A word-level diff: the ranges of `after` that are new, and `before`'s deleted words as
    inserts at their place in `after` (whitespace is not compared, only words)."""
    old = _WORD.findall(before)
    new = list(_WORD.finditer(after))
    inserted, deleted = [], []
    for op, a0, a1, b0, b1 in SequenceMatcher(
        None, old, [m.group() for m in new], autojunk=False
    ).get_opcodes():
        at = new[b0].start() if b0 < len(new) else len(after)
        if op in ("replace", "delete"):
            words = " ".join(old[a0:a1])
            text = html.escape(f"{words} " if b0 < len(new) else f" {words}")
            deleted.append(Insert(at, f'<del data-skip contenteditable="false">{text}</del>'))
        if op in ("replace", "insert"):
            inserted.append((at, new[b1 - 1].end()))
    return inserted, deleted


def render_text(text: str, flags: list[int], inserts: list[Insert]) -> str:
    """`text` as runs of characters with the same flags, each run one span, with `inserts`
    placed before their characters."""
    by_position: dict[int, list[str]] = {}
    for insert in inserts:
        by_position.setdefault(insert.at, []).append(insert.html)
    pieces: list[str] = []
    start = 0
    for i in range(len(text) + 1):
        boundary = i == len(text) or i in by_position or (i > start and flags[i] != flags[start])
        if not boundary:
            continue
        if i > start:
            pieces.append(_run(text[start:i], flags[start]))
        pieces.extend(by_position.get(i, []))
        start = i
    return "".join(pieces)


def _run(text: str, flag: int) -> str:
    escaped = html.escape(text)
    names = [name for bit, name in CLASSES if flag & bit]
    if flag & FRESH:
        names.append("fresh")
    if not names:
        return escaped
    title = (
        ' title="No passage of the library supports this sentence"' if flag & UNSUPPORTED else ""
    )
    return f'<span class="{" ".join(names)}"{title}>{escaped}</span>'


def _mark(flags: list[int], start: int, end: int, bit: int) -> None:
    for i in range(max(start, 0), min(end, len(flags))):
        flags[i] |= bit


def token_flags(text: str, spans: list, canvas: Canvas, fresh_step: int | None = None) -> list[int]:
    """Per character: masked or pinned, from the canvas position that shows it; with
    `fresh_step`, FRESH for the tokens committed at that step (the timeline)."""
    flags = [0] * len(text)
    for position, span in enumerate(spans):
        if span is None:
            continue
        bit = 0
        if canvas.masked[position]:
            bit = MASKED
        elif canvas.pinned[position]:
            bit = PINNED
        if fresh_step is not None and int(canvas.commit_step[position]) == fresh_step:
            bit |= FRESH
        if bit:
            _mark(flags, span[0], span[1], bit)
    _bridge_spaces(text, flags, PINNED | MASKED)
    return flags


def _bridge_spaces(text: str, flags: list[int], bits: int) -> None:
    """Spaces between two tokens that share a flag take it, so a pinned passage reads as one
    highlight (the tokenizer's spans leave the spaces between words to no token)."""
    i = 0
    while i < len(text):
        if flags[i] or not text[i].isspace():
            i += 1
            continue
        end = i
        while end < len(text) and not flags[end] and text[end].isspace():
            end += 1
        if i > 0 and end < len(text):
            shared = flags[i - 1] & flags[end] & bits
            if shared:
                _mark(flags, i, end, shared)
        i = end


def section_body(tokenizer, block: Block, first_note: int) -> tuple[str, int]:
    """The section's text as HTML (pins, masks, citation markers, unsupported sentences and
    its pending tracked change), and the number of the next citation marker."""
    text, spans = text_and_spans(tokenizer, block.canvas)
    flags = token_flags(text, spans, block.canvas)
    inserts: list[Insert] = []
    if block.redline is not None and block.done:
        inserted, deleted = changed_ranges(block.redline, text)
        for start, end in inserted:
            _mark(flags, start, end, INSERTED)
        inserts += deleted
    note = first_note
    citations = fresh_citations(block, text)
    for number, sentence in enumerate(citations.sentences if citations else []):
        if not sentence.supported:
            _mark(flags, sentence.start, sentence.end, UNSUPPORTED)
            continue
        label = f"{sentence.citations[0].hit.filename}, p. {sentence.citations[0].hit.page_label}"
        inserts.append(
            Insert(
                sentence.end,
                f'<sup class="cite" data-skip contenteditable="false" tabindex="0" '
                f'role="button" data-sentence="{number}" '
                f'title="{html.escape(label)}">{note}</sup>',
            )
        )
        note += 1
    inserts.sort(key=lambda insert: insert.at)  # stable: deletions before a marker
    return render_text(text, flags, inserts), note


def document_html(tokenizer, draft: Draft | None, running: bool = False) -> str:
    """The whole draft: an outline, then every section with its heading and text. Sections are
    editable in place unless the draft is running or the section is not finished."""
    if draft is None:
        return (
            '<div class="doc-empty">Write an instruction and the section headings (or start '
            "from a template), then press <b>Start</b>. The draft appears here as one document."
            "</div>"
        )
    outline, sections = [], []
    note = 1
    for index, block in enumerate(draft.blocks):
        state, _ = section_state(block)
        heading = html.escape(block.heading)
        outline.append(
            f'<li class="{state}"><a href="#sec-{index}" data-goto="{index}">{heading}</a></li>'
        )
        body, note = section_body(tokenizer, block, note)
        editable = "true" if block.done and not running else "false"
        change = ""
        if block.redline is not None and block.done:
            change = (
                '<div class="change-bar" data-skip contenteditable="false">Tracked change: '
                "<del>struck</del> text was removed, <ins>underlined</ins> text is new. "
                f'<button data-op="accept" data-block="{index}">Accept</button> '
                f'<button data-op="reject" data-block="{index}">Reject</button></div>'
            )
        sections.append(
            f'<section class="doc-section {state}" id="sec-{index}" data-block="{index}">'
            f'<h3 class="doc-heading"><span class="doc-number">{index + 1}</span> {heading}'
            f'<span class="doc-meta" id="sec-{index}-meta">{html.escape(section_meta(block))}'
            "</span></h3>"
            f"{change}"
            f'<div class="doc-text" id="sec-{index}-text" data-block="{index}" '
            f'contenteditable="{editable}" spellcheck="false" tabindex="0" role="textbox" '
            f'aria-multiline="true" aria-label="Section {index + 1}: {heading}">{body}</div>'
            "</section>"
        )
    state = "running" if running else "idle"
    return (
        f'<div class="doc" data-draft="{html.escape(draft.draft_id)}" data-state="{state}">'
        f'<nav class="doc-outline" aria-label="Outline"><b>Outline</b><ol>{"".join(outline)}'
        f'</ol></nav><article class="doc-page"><h2 class="doc-title">{html.escape(draft.title)}'
        f"</h2>{''.join(sections)}</article></div>"
    )


def progress_html(draft: Draft) -> str:
    done = sum(b.step for b in draft.blocks)
    total = sum(b.steps_total for b in draft.blocks) or 1
    finished = sum(b.done for b in draft.blocks)
    state = (
        f"all {finished} sections done"
        if draft.done
        else f"step {draft.step} · {finished}/{len(draft.blocks)} sections done"
    )
    return (
        f'<div id="draft-progress"><progress max="{total}" value="{done}"></progress> {state}</div>'
    )


def timeline_html(tokenizer, draft: Draft, canvases: list[Canvas], step: int) -> str:
    """The draft as it was after `step`, with the tokens committed at that very step marked:
    the white-box view of diffusion (what each step decided)."""
    parts = []
    committed = 0
    for block, canvas in zip(draft.blocks, canvases, strict=False):
        text, spans = text_and_spans(tokenizer, canvas)
        flags = token_flags(text, spans, canvas, fresh_step=step)
        committed += int((canvas.commit_step == step).sum())
        parts.append(
            f"<h4>{html.escape(block.heading)}</h4>"
            f'<p class="timeline-text">{render_text(text, flags, [])}</p>'
        )
    head = (
        f"<p><b>After step {step} of {draft.step}</b>: {committed} token(s) committed at this "
        f'step, <span class="fresh">marked</span>; {MASK_GLYPH} still masked (read-only).</p>'
    )
    return head + "".join(parts)
