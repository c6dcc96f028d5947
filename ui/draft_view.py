"""Draft state -> what the Draft tab shows. Pure functions: no Gradio events, no engine calls
beyond reading. Every piece of document or model text is HTML-escaped before it is shown."""

from __future__ import annotations

import html
from dataclasses import dataclass

from engine.attribution import Support
from engine.draft import MASK_GLYPH, Draft, canvas_text, text_and_spans
from engine.library import SearchHit

SNIPPET = 220


@dataclass(frozen=True)
class SourceRow:
    """One line of a block's sources table, and what clicking it opens."""

    doc_id: str
    filename: str
    page_index: int
    page_label: str
    score: float
    quote: str

    def cells(self) -> list:
        return [self.filename, self.page_label, round(self.score, 3), shorten(self.quote)]


def shorten(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def rows_from_evidence(hits: list[SearchHit]) -> list[SourceRow]:
    return [
        SourceRow(h.doc_id, h.filename, h.page_index, h.page_label, h.score, h.text) for h in hits
    ]


def rows_from_supports(supports: list[Support]) -> list[SourceRow]:
    rows = []
    for s in supports:
        quotes = s.quotes()
        quote = max(quotes, key=len) if quotes else s.hit.text
        rows.append(
            SourceRow(
                s.hit.doc_id, s.hit.filename, s.hit.page_index, s.hit.page_label, s.support, quote
            )
        )
    return rows


def block_status(draft: Draft, index: int) -> str:
    block = draft.blocks[index]
    if block.done:
        state = "done"
    elif block.step == 0:
        state = "waiting"
    else:
        state = f"{block.canvas.n_masked} tokens still masked"
    targets = f" · limited to {len(block.targets)} document(s)" if block.targets else ""
    progress = f"step {block.step}/{block.steps_total} · {state}{targets}"
    return f"### {index + 1}. {html.escape(block.heading)}\n{progress}"


def pinned_line(spans: list[tuple[int, int, str]]) -> str:
    """A block's pinned passages (`engine.draft.pinned_spans`), for its header."""
    if not spans:
        return ""
    quoted = ", ".join(f"“{html.escape(shorten(text, 80))}”" for _, _, text in spans)
    return f"\n\n**Pinned:** {quoted}"


def confidence_html(tokenizer, draft: Draft, index: int) -> str:
    """The block's text with each token shaded by the model's confidence when it was committed;
    masks as grey blocks, pinned text underlined."""
    canvas = draft.blocks[index].canvas
    text, spans = text_and_spans(tokenizer, canvas)
    marks: list[tuple[int, int, str]] = []
    for position, span in enumerate(spans):
        if span is None:
            continue
        if canvas.masked[position]:
            style = "color:#9ca3af"
        elif canvas.pinned[position]:
            style = "background:#dbeafe;text-decoration:underline"
        else:
            alpha = 0.55 * (1.0 - float(canvas.confidence[position]))
            style = f"background:rgba(249,115,22,{alpha:.2f})"
        marks.append((span[0], span[1], style))
    pieces, cursor = [], 0
    for start, end, style in marks:
        if start < cursor:
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(f'<span style="{style}">{html.escape(text[start:end])}</span>')
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    legend = (
        "<small>shading: darker = less confident when committed; "
        f"{MASK_GLYPH} = still masked; blue = pinned</small>"
    )
    return f'<div class="confidence-view">{"".join(pieces)}</div>{legend}'


def pin_choices(spans: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    """(label, "start:end") for each pinned passage of a block (`engine.draft.pinned_spans`)."""
    return [(f"“{shorten(text, 60)}”", f"{start}:{end}") for start, end, text in spans]


def timeline_html(tokenizer, draft: Draft, canvases: list, step: int) -> str:
    """The whole draft as it was after `step`, read-only."""
    parts = [f"<p><b>The draft after step {step} of {draft.step}</b> (read-only)</p>"]
    for block, canvas in zip(draft.blocks, canvases, strict=False):
        text = canvas_text(tokenizer, canvas, show_masks=True)
        parts.append(f"<h4>{html.escape(block.heading)}</h4><p>{html.escape(text)}</p>")
    return "".join(parts)
