"""The side panel of the section in focus: what supports its text and what the model read.

Two lists, labelled apart, because they answer different questions: "Supports this text" is the
sentence-level attribution stored with the draft (numbered like the markers in the document);
"Read by the model" is the evidence the section was conditioned on, this round and before.
Where the passages disagree on a figure, a date or a duration, the panel says so. Pure
functions over stored state; every entry is a button whose data names what to open.
"""

from __future__ import annotations

import html

from engine.conflicts import find_conflicts
from engine.draft import Draft, block_text
from engine.search_hit import SearchHit
from ui.document_view import fresh_citations, section_meta

SNIPPET = 220


def shorten(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def first_notes(tokenizer, draft: Draft) -> list[int]:
    """The number of each section's first citation marker, as the document numbers them."""
    numbers, note = [], 1
    for block in draft.blocks:
        numbers.append(note)
        citations = fresh_citations(block, block_text(tokenizer, block, show_masks=True))
        note += len(citations.supports()) if citations else 0
    return numbers


def _source_button(data: str, label: str, score: float | None = None) -> str:
    scored = f' <span class="score">{score:.2f}</span>' if score is not None else ""
    return f'<button class="source" {data}>{html.escape(label)}{scored}</button>'


def _supports(tokenizer, draft: Draft, index: int) -> str:
    block = draft.blocks[index]
    citations = fresh_citations(block, block_text(tokenizer, block, show_masks=True))
    if citations is None:
        return "<p class='muted'>Shown when the section is finished.</p>"
    items, note = [], first_notes(tokenizer, draft)[index]
    for number, sentence in enumerate(citations.sentences):
        if not sentence.supported:
            quoted = html.escape(shorten(sentence.text, 140))
            items.append(
                f'<li class="unsupported"><span class="unsup">“{quoted}”</span> is supported '
                "by no passage of the library.</li>"
            )
            continue
        buttons = " ".join(
            _source_button(
                f'data-kind="support" data-sentence="{number}" data-citation="{k}"',
                f"{c.hit.filename}, {c.hit.page_note()}",
                c.support,
            )
            for k, c in enumerate(sentence.citations)
        )
        quote = html.escape(shorten(sentence.citations[0].quote(), 200))
        items.append(f"<li><sup>{note}</sup> {buttons}<q>{quote}</q></li>")
        note += 1
    if not items:
        return "<p class='muted'>The section has no sentence to cite.</p>"
    return f"<ol class='supports'>{''.join(items)}</ol>"


def _read(draft: Draft, index: int) -> str:
    block = draft.blocks[index]
    if not block.evidence:
        return "<p class='muted'>Nothing yet: retrieval runs when the section starts.</p>"
    latest = block.read[-1].step if block.read else draft.step
    items = "".join(
        "<li>"
        + _source_button(f'data-kind="read" data-hit="{k}"', f"{h.filename}, {h.page_note()}")
        + f"<q>{html.escape(shorten(h.text))}</q></li>"
        for k, h in enumerate(block.evidence)
    )
    earlier = [(r, round_) for r, round_ in enumerate(block.read[:-1]) if round_.sources]
    lines = "".join(
        f"<li>before step {round_.step + 1}: "
        + " · ".join(
            _source_button(
                f'data-kind="round" data-round="{r}" data-source="{s}"',
                f"{source.filename}, p. {source.page_label}",
            )
            for s, source in enumerate(round_.sources)
        )
        + "</li>"
        for r, round_ in reversed(earlier)
    )
    history = (
        f"<p class='muted'>Earlier rounds:</p><ul class='rounds'>{lines}</ul>" if lines else ""
    )
    return (
        f"<p class='muted'>This round (read before step {latest + 1}):</p>"
        f"<ol class='read'>{items}</ol>{history}"
    )


def _conflicts(tokenizer, draft: Draft, index: int) -> str:
    block = draft.blocks[index]
    citations = fresh_citations(block, block_text(tokenizer, block, show_masks=True))
    passages: list[SearchHit] = list(block.evidence)
    if citations is not None:
        passages += [c.hit for s in citations.sentences for c in s.citations]
    found = find_conflicts(passages)
    if not found:
        return ""
    items = "".join(
        f"<li>{html.escape(c.first[0].filename)} p. {html.escape(c.first[0].page_label)} says "
        f"<b>{html.escape(c.first[1].text)}</b>; {html.escape(c.second[0].filename)} p. "
        f"{html.escape(c.second[0].page_label)} says <b>{html.escape(c.second[1].text)}</b> "
        f"({html.escape(', '.join(c.about[:4]))})</li>"
        for c in found
    )
    return f"<h4>Sources disagree</h4><ul class='conflicts'>{items}</ul>"


def panel_html(tokenizer, draft: Draft | None, index: int | None) -> str:
    if draft is None or index is None or not 0 <= index < len(draft.blocks):
        return (
            "<p class='muted'>Click a section of the draft to see what supports it and what "
            "the model read for it; click a citation marker to see its page.</p>"
        )
    block = draft.blocks[index]
    return (
        f'<div class="panel" data-block="{index}">'
        f"<h3>{index + 1}. {html.escape(block.heading)}</h3>"
        f"<p class='muted'>{html.escape(section_meta(block))}</p>"
        f"<h4>Supports this text</h4>{_supports(tokenizer, draft, index)}"
        f"{_conflicts(tokenizer, draft, index)}"
        f"<h4>Read by the model</h4>{_read(draft, index)}</div>"
    )
