"""The drafting invariants of DESIGN section 2, on a tiny real model and a real library."""

from __future__ import annotations

import contextlib

import pytest
import torch
from drafting_fixtures import HEADINGS, INSTRUCTION, draft_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.draft import (
    DraftError,
    block_text,
    edit_text,
    pin_selection,
    pinned_spans,
    text_and_spans,
    unpin_selection,
)
from engine.drafting import Drafter, section_query
from engine.sampler import State


def snapshot(draft) -> list[tuple]:
    return [
        (
            b.canvas.tokens.clone(),
            b.canvas.state.clone(),
            b.canvas.commit_step.clone(),
            b.canvas.confidence.clone(),
            [h.chunk_id for h in b.evidence],
            list(b.targets),
        )
        for b in draft.blocks
    ]


def same_block(a: tuple, b: tuple) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a[:4], b[:4], strict=True)) and a[4:] == b[4:]


def finished(drafter: Drafter, draft, **run) -> list:
    events = list(drafter.run(draft, **run))
    return events


@pytest.fixture
def drafter(workspace, tiny_model) -> Drafter:
    return workspace.drafter(str(tiny_model))


WORDS = [
    "the",
    "supplier",
    "shall",
    "indemnify",
    "each",
    "customer",
    "against",
    "every",
    "loss",
    "arising",
]


@pytest.mark.parametrize(
    ("instruction", "headings", "reason"),
    [
        (" ".join(WORDS * 60_000), HEADINGS, "characters; at most"),  # about 4 MB
        (INSTRUCTION, [f"Section {i}" for i in range(300)], "split the document"),
        (INSTRUCTION, ["A heading " * 500], "a heading has at most"),
        (" ".join(WORDS * 50)[:3990], HEADINGS, "shorten them"),  # fits in chars, not tokens
    ],
    ids=["huge-instruction", "300-sections", "huge-heading", "over-the-model-context"],
)
def test_oversized_drafts_are_refused_before_anything_is_stored(
    drafter, tiny_model, workspace, instruction, headings, reason
):
    before = len(workspace.drafts.drafts())
    with pytest.raises(DraftError, match=reason):
        drafter.start(instruction, headings, draft_settings(tiny_model))
    assert len(workspace.drafts.drafts()) == before


def test_the_one_decode_text_equals_the_prefix_decoded_text_at_every_step(drafter, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model, temperature=0.9))
    for _ in drafter.run(draft):
        for block in draft.blocks:
            for masks in (True, False):
                expected = text_and_spans(drafter.tokenizer, block.canvas, masks)[0]
                assert block_text(drafter.tokenizer, block, masks) == expected


def test_a_draft_runs_to_completion_streaming_every_step(drafter, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), seed=1)
    events = finished(drafter, draft)
    assert [e.step for e in events] == list(range(1, 7))
    masked = [[b.masked for b in e.blocks] for e in events]
    assert all(m[-1] == 0 for m in zip(*masked, strict=True))
    for per_block in zip(*masked, strict=True):
        assert list(per_block) == sorted(per_block, reverse=True)  # masks never grow
    assert events[-1].done and draft.done
    assert all(drafter.text(draft, i).strip() for i in range(len(HEADINGS)))
    assert all(block.evidence for block in draft.blocks)


def test_same_seed_same_draft_other_seed_other_draft(drafter, tiny_model):
    settings = draft_settings(tiny_model, temperature=0.8)
    runs = []
    for seed in (5, 5, 6):
        draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=seed)
        finished(drafter, draft)
        runs.append(snapshot(draft))
    assert all(same_block(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(same_block(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_resume_from_the_store_equals_the_uninterrupted_run(drafter, workspace, tiny_model):
    settings = draft_settings(tiny_model, temperature=0.7, order="margin")
    whole = drafter.start(INSTRUCTION, HEADINGS, settings, seed=11)
    finished(drafter, whole)
    paused = drafter.start(INSTRUCTION, HEADINGS, settings, seed=11)
    finished(drafter, paused, stop_after=3)
    assert paused.step == 3 and not paused.done
    reloaded, fresh_drafter = workspace.open_to_run(paused.draft_id)
    finished(fresh_drafter, reloaded)
    assert all(same_block(a, b) for a, b in zip(snapshot(whole), snapshot(reloaded), strict=True))


def test_pins_survive_steps_rerun_retarget_and_edits_elsewhere(drafter, workspace, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), seed=3)
    finished(drafter, draft, stop_after=3)  # half written: pin what exists so far
    block = draft.blocks[0]
    text = drafter.text(draft, 0)
    pin_selection(drafter.tokenizer, block, 0, len(text) // 2)
    pinned = block.canvas.pinned.clone()
    tokens = block.canvas.tokens[pinned].clone()
    assert pinned.any()

    def pins_intact() -> None:
        assert torch.equal(block.canvas.pinned, pinned)
        assert torch.equal(block.canvas.tokens[pinned], tokens)

    finished(drafter, draft)
    pins_intact()
    drafter.rerun(draft, 0, strength=1.0)
    assert block.canvas.masked.sum() == (~pinned).sum()
    finished(drafter, draft, only=[0])
    pins_intact()
    nda = next(r for r in workspace.library.documents() if r.filename == "nda.pdf")
    drafter.retarget(draft, 0, [nda.doc_id], strength=0.5)
    finished(drafter, draft, only=[0])
    pins_intact()
    edit_text(drafter.tokenizer, draft.blocks[1], "The supplier may end this agreement at once.")
    pins_intact()


def test_an_operation_on_one_block_leaves_the_others_identical(drafter, workspace, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), seed=4)
    finished(drafter, draft)
    before = snapshot(draft)
    act = next(r for r in workspace.library.documents() if r.filename.startswith("data-prot"))
    drafter.retarget(draft, 1, [act.doc_id], strength=1.0)
    finished(drafter, draft, only=[1])
    drafter.rerun(draft, 2, strength=0.3)
    finished(drafter, draft, only=[2])
    after = snapshot(draft)
    assert same_block(before[0], after[0])
    assert not same_block(before[1], after[1])


def test_each_section_is_searched_by_its_heading_not_the_drafts_instruction(
    drafter, workspace, tiny_model
):
    """The instruction is about a services agreement; sections on trade secrets and on data
    subjects' rights must still read the NDA and the statute (with the instruction in the query,
    both read the services agreement first)."""
    headings = ["Trade secrets", "Rights of data subjects"]
    draft = drafter.start(INSTRUCTION, headings, draft_settings(tiny_model), seed=3)
    drafter.refresh_evidence(draft, [0, 1])
    names = {record.doc_id: record.filename for record in workspace.library.documents()}
    read = [[names[hit.doc_id] for hit in block.evidence] for block in draft.blocks]
    assert read == [["nda.pdf"] * 2, ["data-protection-act.pdf"] * 2]


def test_section_query_is_the_heading_and_text_so_far_else_the_instruction():
    assert section_query("Write a memo.", "Notice period", "") == "Notice period"
    assert section_query("Write a memo.", " Notice ", " Thirty days ") == "Notice Thirty days"
    assert section_query("Write a memo.", "  ", "Thirty days") == "Write a memo. Thirty days"


def test_retargeted_block_takes_all_evidence_and_sources_from_that_document(
    drafter,
    workspace,
    tiny_model,
):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model), seed=8)
    finished(drafter, draft)
    act = next(r for r in workspace.library.documents() if r.filename.startswith("data-prot"))
    drafter.retarget(draft, 0, [act.doc_id])
    events = finished(drafter, draft, only=[0])
    assert events and all(e.stepped == [0] for e in events)
    assert draft.blocks[0].evidence
    assert {hit.doc_id for hit in draft.blocks[0].evidence} == {act.doc_id}
    sources = workspace.to_json(drafter, draft)["blocks"][0]["sources"]
    assert sources and {s["doc_id"] for s in sources} == {act.doc_id}
    other = {hit.doc_id for b in draft.blocks[1:] for hit in b.evidence}
    assert other != {act.doc_id}


def test_pin_map_covers_whole_tokens_and_unpin_releases_them(drafter, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS[:1], draft_settings(tiny_model), seed=2)
    finished(drafter, draft)
    block = draft.blocks[0]
    text = drafter.text(draft, 0)
    pin_selection(drafter.tokenizer, block, 1, 2)  # one character inside the first token
    ((start, end, span_text),) = pinned_spans(drafter.tokenizer, block)
    assert start <= 1 and end >= 2 and text[start:end] == span_text
    unpin_selection(drafter.tokenizer, block, start, end)
    assert not block.canvas.pinned.any()


def test_edits_must_keep_pinned_text(drafter, tiny_model):
    draft = drafter.start(INSTRUCTION, HEADINGS[:1], draft_settings(tiny_model), seed=2)
    finished(drafter, draft)
    block = draft.blocks[0]
    edit_text(drafter.tokenizer, block, "either party may terminate on ninety days notice.")
    text = drafter.text(draft, 0)
    start = text.index("ninety")
    pin_selection(drafter.tokenizer, block, start, start + len("ninety days"))
    with pytest.raises(DraftError, match="removes pinned text"):
        edit_text(drafter.tokenizer, block, "either party may terminate at will.")
    edit_text(
        drafter.tokenizer, block, "with ninety days notice either party may terminate.", lock=False
    )
    assert [t for _, _, t in pinned_spans(drafter.tokenizer, block)] == ["ninety days"]
    edit_text(drafter.tokenizer, block, "locked ninety days text", lock=True)
    assert bool((block.canvas.state == State.PINNED).all())


def test_bad_requests_get_clear_errors(drafter, tiny_model):
    with pytest.raises(DraftError, match="instruction"):
        drafter.start("   ", HEADINGS, draft_settings(tiny_model))
    with pytest.raises(DraftError, match="section heading"):
        drafter.start(INSTRUCTION, ["", "  "], draft_settings(tiny_model))
    with pytest.raises(DraftError, match="too little room"):
        drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model, block_tokens=400))
    with pytest.raises(DraftError, match="shorten"):
        draft = drafter.start("word " * 2000, HEADINGS[:1], draft_settings(tiny_model))
        finished(drafter, draft)
    draft = drafter.start(INSTRUCTION, HEADINGS[:1], draft_settings(tiny_model))
    with pytest.raises(DraftError, match="no document"):
        drafter.retarget(draft, 0, ["not-a-document"])
    with pytest.raises(DraftError, match="no block 5"):
        drafter.rerun(draft, 4)


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["step", "pin", "unpin", "edit", "rerun", "retarget"]),
        st.integers(0, 2),  # block
        st.floats(0.0, 1.0),  # where in the text / strength
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(operations=OPERATIONS)
def test_random_operation_sequences_keep_every_invariant(
    drafter, workspace, tiny_model, operations
):
    draft = drafter.start(INSTRUCTION, HEADINGS, draft_settings(tiny_model, steps=3), seed=0)
    doc_ids = [r.doc_id for r in workspace.library.documents()]
    for name, index, where in operations:
        block = draft.blocks[index]
        pinned = block.canvas.pinned.clone()
        pinned_tokens = block.canvas.tokens[pinned].clone()
        others = {i: s for i, s in enumerate(snapshot(draft)) if i != index}
        masks_before = [b.canvas.n_masked for b in draft.blocks]
        text = drafter.text(draft, index)
        if name == "step":
            list(drafter.run(draft, stop_after=1))
            others = {}  # a step may advance every unfinished block
            assert all(
                b.canvas.n_masked <= m for b, m in zip(draft.blocks, masks_before, strict=True)
            )
        elif name == "pin" and text:
            position = int(where * (len(text) - 1))
            with contextlib.suppress(DraftError):  # nothing written there yet
                pin_selection(drafter.tokenizer, block, position, position + 1)
            pinned = block.canvas.pinned.clone() & pinned  # new pins may appear, none vanish
        elif name == "unpin":
            unpin_selection(drafter.tokenizer, block, 0, 10**6)
            assert not block.canvas.pinned.any()
            pinned = None  # nothing is pinned any more, so nothing has to stay
        elif name == "edit":
            kept = " ".join(t for _, _, t in pinned_spans(drafter.tokenizer, block))
            edit_text(drafter.tokenizer, block, (kept + " the parties agree.").strip())
            pinned = None  # positions move with the text; the pinned text itself is checked
            assert [t for _, _, t in pinned_spans(drafter.tokenizer, block)] == kept.split(
                " "
            ) or not kept
        elif name == "rerun":
            drafter.rerun(draft, index, strength=where)
            list(drafter.run(draft, only=[index]))
        elif name == "retarget":
            drafter.retarget(draft, index, [doc_ids[int(where * (len(doc_ids) - 1))]], where)
            list(drafter.run(draft, only=[index]))
        if pinned is not None and pinned.numel() == len(block.canvas):
            assert torch.equal(
                block.canvas.tokens[pinned & block.canvas.pinned],
                pinned_tokens[block.canvas.pinned[pinned]],
            )
        for i, before in others.items():
            assert same_block(before, snapshot(draft)[i]), (name, index, i)
    list(drafter.run(draft))
    assert draft.done
