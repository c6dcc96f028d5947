"""The Draft tab's view and handlers without a browser: a tiny real model, a real library.

What a section read and what supports it are stored with the draft and drawn from there; the
document's characters are exactly the sections' texts (the page's script maps selections back
by counting them); tracked changes, templates and "follow this document" work through the same
handlers the page calls.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import gradio as gr
import pytest
from drafting_fixtures import HEADINGS, INSTRUCTION, draft_settings

from engine.draft import DraftError
from engine.library import Library
from engine.workspace import Workspace
from ui import draft_handlers as handlers
from ui.document_view import document_html, timeline_html
from ui.draft_screen import DraftScreen
from ui.runs import RunRegistry
from ui.section_panel import panel_html
from ui.sessions import Session

COPIED = (
    "Either party may terminate this Agreement, or any Statement of Work, for convenience by "
    "giving the other party not less than ninety (90) days' written notice."
)


class SectionTexts(HTMLParser):
    """The characters of each `.doc-text`, skipping `[data-skip]` elements, as document.js
    counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[int, str] = {}
        self.stack: list[tuple[str, int | None, bool]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        block = (
            int(attributes["data-block"]) if "doc-text" in (attributes.get("class") or "") else None
        )
        skip = "data-skip" in attributes or (self.stack and self.stack[-1][2])
        if block is not None:
            self.texts[block] = ""
        inherited = block if block is not None else (self.stack[-1][1] if self.stack else None)
        self.stack.append((tag, inherited, bool(skip)))

    def handle_endtag(self, tag):
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1][1] is not None and not self.stack[-1][2]:
            self.texts[self.stack[-1][1]] += data


def section_texts(document: str) -> dict[int, str]:
    parser = SectionTexts()
    parser.feed(document)
    return parser.texts


@pytest.fixture
def session(workspace: Workspace) -> Session:
    return Session(workspace, RunRegistry())


def select(index: int, **value) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": value})


def no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any search or embedding of the library fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("drawing the draft searched the library")

    for name in ("search", "search_many"):
        monkeypatch.setattr(Library, name, refuse)


def test_a_finished_draft_stores_what_it_read_and_what_supports_it(workspace, draft, drafter):
    stored = workspace.drafts.load(draft.draft_id)
    for index, block in enumerate(stored.blocks):
        assert block.read and block.read[0].step == 0, block.read
        assert {s.chunk_id for s in block.read[-1].sources} == {h.chunk_id for h in block.evidence}
        assert block.citations is not None
        assert block.citations.text == drafter.text(stored, index)
        assert block.citations.sentences  # the demo text has sentences, cited or not
    data = workspace.to_json(drafter, stored)
    assert data["blocks"][0]["read"][0]["sources"], data["blocks"][0]["read"]
    assert data["blocks"][0]["redline"] is None


def test_the_document_shows_each_sections_text_exactly(workspace, draft, drafter, monkeypatch):
    edited, _ = workspace.edit(draft.draft_id, 0, COPIED)
    pinned, _ = workspace.pin(draft.draft_id, 1, 0, 8)
    no_search(monkeypatch)  # drawing reads stored citations: it never attributes again
    document = document_html(drafter.tokenizer, pinned)
    texts = section_texts(document)
    assert texts == {i: drafter.view(pinned, i).text for i in range(len(HEADINGS))}
    assert texts[0].startswith("either party may terminate this agreement")
    assert re.search(r'<sup class="cite"[^>]*data-sentence="0"[^>]*>1</sup>', document)
    assert '<span class="pin' in document.split('id="sec-1-text"')[1].split("</section>")[0]
    assert "unsup" in document.split('id="sec-2-text"')[1]  # the demo's nonsense is unsupported
    panel = panel_html(drafter.tokenizer, pinned, 0)
    assert "services-agreement.pdf" in panel and "Supports this text" in panel
    assert "Read by the model" in panel


def test_an_edit_is_a_tracked_change_until_accepted(workspace, draft, drafter):
    before = drafter.text(draft, 2)
    changed, _ = workspace.edit(draft.draft_id, 2, COPIED)
    assert changed.blocks[2].redline == before
    document = document_html(drafter.tokenizer, changed)
    section = document.split('id="sec-2"')[1]
    assert "<del data-skip" in section and 'class="ins' in section and "Accept" in section
    again, _ = workspace.edit(draft.draft_id, 2, COPIED + " It survives.")
    assert again.blocks[2].redline == before  # changes pile up on the last accepted text
    accepted, _ = workspace.accept(draft.draft_id, 2)
    assert accepted.blocks[2].redline is None
    assert "<del" not in document_html(drafter.tokenizer, accepted).split('id="sec-2"')[1]


def test_reject_restores_the_text_before_the_change(workspace, draft, drafter):
    before = drafter.text(draft, 1)
    workspace.edit(draft.draft_id, 1, COPIED)
    rejected, _ = workspace.reject(draft.draft_id, 1)
    assert drafter.text(rejected, 1) == before and rejected.blocks[1].redline is None
    with pytest.raises(DraftError, match="no change to reject"):
        workspace.reject(draft.draft_id, 1)


def test_a_rerun_keeps_the_text_before_it_for_the_redline(workspace, draft, drafter):
    before = drafter.text(draft, 0)
    renoised, drafter = workspace.rerun(draft.draft_id, 0)
    assert renoised.blocks[0].redline == before
    list(drafter.run(renoised, only=[0]))
    assert renoised.blocks[0].citations.text == drafter.text(renoised, 0)


def test_handlers_pin_from_a_selection_and_return_changes_by_name(session, draft, drafter):
    text = drafter.text(draft, 1)
    end = text.index(" ", 3)
    changes = handlers.document_event(
        session, draft.draft_id, select(1, op="pin", start=0, end=end)
    )
    names = {f.name for f in DraftScreen.__dataclass_fields__.values()}
    assert set(changes) <= names, set(changes) - names
    assert changes["status"] == "Pinned." and changes["focus"] == 1
    assert '<span class="pin' in changes["document"].split('id="sec-1-text"')[1]
    focused = handlers.document_event(session, draft.draft_id, select(2, op="focus"))
    assert set(focused) == {"focus", "panel", "targets"} and focused["focus"] == 2
    with pytest.raises(DraftError, match="unknown operation"):
        handlers.document_event(session, draft.draft_id, select(0, op="format-disk"))


def test_a_citation_marker_opens_the_cited_page(session, workspace, draft):
    workspace.edit(draft.draft_id, 0, COPIED)
    changes = handlers.document_event(session, draft.draft_id, select(0, op="cite", sentence=0))
    assert "services-agreement.pdf" in changes["page_caption"]
    assert "could not be located" not in changes["page_caption"]
    assert changes["page"].startswith('<img src="data:image/png;base64,')
    doc_id, _, quote = changes["page_at"]
    assert "ninety (90) days" in quote
    turned = handlers.next_page(session, changes["page_at"])
    assert turned["page_at"][1] == changes["page_at"][1] + 1


def test_following_a_document_limits_every_section(workspace, drafter, tiny_model):
    nda = next(r.doc_id for r in workspace.library.documents() if r.filename == "nda.pdf")
    draft = drafter.start(
        INSTRUCTION, HEADINGS, draft_settings(tiny_model, steps=2), seed=1, follow=[nda]
    )
    list(drafter.run(draft, stop_after=1))
    for block in draft.blocks:
        assert block.targets == [nda]
        assert block.evidence and {hit.doc_id for hit in block.evidence} == {nda}
    with pytest.raises(DraftError, match="no document"):
        drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), follow=["0" * 64])


def test_a_template_fills_the_sections(session):
    changes = handlers.choose_template(session, "Research note (IMRaD)")
    assert changes["sections"].splitlines()[:4] == [
        "Abstract",
        "Introduction",
        "Methods",
        "Results",
    ]
    assert handlers.choose_template(session, "(my own sections)") == {}


def test_the_timeline_marks_what_each_step_committed(workspace, finished, drafter):
    canvases = workspace.drafts.snapshot(finished.draft_id, 1)
    view = timeline_html(drafter.tokenizer, finished, canvases, 1)
    committed = sum(int((c.commit_step == 1).sum()) for c in canvases)
    assert committed > 0 and f"{committed} token(s) committed at this step" in view
    assert view.count('class="fresh"') + view.count(' fresh"') >= 1


def test_the_screen_refuses_a_change_to_a_component_it_does_not_have(workspace, tiny_model):
    with gr.Blocks():
        from ui.draft_screen import lay_out

        screen = lay_out(str(tiny_model))
    assert screen.apply({"status": "x"}) == {screen.status: "x"}
    with pytest.raises(KeyError, match="no component 'block_0_text'"):
        screen.apply({"block_0_text": "x"})


def test_the_panel_marks_a_passage_read_from_a_doubtful_scan(drafter, draft):
    hit = draft.blocks[0].evidence[0]
    draft.blocks[0].evidence[0] = replace(hit, ocr_confidence=0.71, low_confidence=True)
    panel = panel_html(drafter.tokenizer, draft, 0)
    assert f"{hit.filename}, p. {hit.page_label} · OCR, low confidence 0.71" in panel
