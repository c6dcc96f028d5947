"""Block operations as Workspace transactions (load, check idle, change, save), on a tiny real
model and a real library: the DESIGN section 2 invariants hold for what is stored."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.draft import Draft, DraftError, pinned_spans
from engine.drafting import Drafter
from engine.workspace import Workspace


def blocks(draft: Draft) -> list[tuple]:
    return [
        (b.canvas.tokens.clone(), b.canvas.state.clone(), list(b.targets)) for b in draft.blocks
    ]


def same(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def stored(workspace: Workspace, draft_id: str) -> list[tuple]:
    return blocks(workspace.drafts.load(draft_id))


def pin_half(workspace: Workspace, drafter: Drafter, draft: Draft, index: int) -> Draft:
    half = len(drafter.text(draft, index)) // 2
    return workspace.pin(draft.draft_id, index, 0, half)[0]


def test_pin_and_unpin_are_saved_and_touch_only_their_block(workspace, draft):
    before = blocks(draft)
    pinned, drafter = workspace.pin(draft.draft_id, 1, 0, 5)
    ((start, end, _),) = pinned_spans(drafter.tokenizer, pinned.blocks[1])
    assert start == 0 and end >= 5
    after = stored(workspace, draft.draft_id)
    assert all(map(same, after, blocks(pinned)))
    assert same(after[0], before[0]) and same(after[2], before[2])
    assert torch.equal(after[1][0], before[1][0])  # pinning changes states, never tokens

    unpinned, _ = workspace.unpin(draft.draft_id, 1, start, end)
    assert not unpinned.blocks[1].canvas.pinned.any()
    assert all(map(same, stored(workspace, draft.draft_id), before))


def test_bad_selections_are_refused_and_store_nothing(workspace, draft):
    before = stored(workspace, draft.draft_id)
    for operation, reason in (
        (lambda: workspace.pin(draft.draft_id, 0, 5, 10**6), "outside the block's text"),
        (lambda: workspace.pin(draft.draft_id, 0, 3, 3), "outside the block's text"),
        (lambda: workspace.unpin(draft.draft_id, 0, -1, 4), "outside the block's text"),
        (lambda: workspace.unpin(draft.draft_id, 0, 0, 4), "nothing is pinned"),
    ):
        with pytest.raises(DraftError, match=reason):
            operation()
    assert all(map(same, stored(workspace, draft.draft_id), before))


def test_edit_keeps_pinned_text_and_refuses_to_remove_it(workspace, draft):
    edited, drafter = workspace.edit(draft.draft_id, 0, "either party may end it on ninety days")
    text = drafter.text(edited, 0)
    start = text.index("ninety")
    workspace.pin(draft.draft_id, 0, start, start + len("ninety days"))
    before = stored(workspace, draft.draft_id)
    with pytest.raises(DraftError, match="removes pinned text"):
        workspace.edit(draft.draft_id, 0, "either party may end it at will")
    assert all(map(same, stored(workspace, draft.draft_id), before))

    kept, _ = workspace.edit(draft.draft_id, 0, "on ninety days notice, either party may end it")
    assert [t for _, _, t in pinned_spans(drafter.tokenizer, kept.blocks[0])] == ["ninety days"]
    locked, _ = workspace.edit(draft.draft_id, 0, "by hand: ninety days, locked", lock=True)
    assert bool(locked.blocks[0].canvas.pinned.all())
    after = stored(workspace, draft.draft_id)
    assert all(map(same, after[1:], before[1:]))  # edits elsewhere never touch another block


def test_rerun_redrafts_only_that_block_and_keeps_its_pins(workspace, drafter, draft):
    pinned = pin_half(workspace, drafter, draft, 0)
    mask = pinned.blocks[0].canvas.pinned.clone()
    tokens = pinned.blocks[0].canvas.tokens[mask].clone()
    before = blocks(pinned)

    renoised, _ = workspace.rerun(draft.draft_id, 0, strength=1.0)
    assert bool((renoised.blocks[0].canvas.masked == ~mask).all())
    assert stored(workspace, draft.draft_id)[0][1].equal(renoised.blocks[0].canvas.state)
    with workspace.running(draft.draft_id):
        events = list(drafter.run(renoised, only=[0]))
    assert events and all(event.stepped == [0] for event in events)

    after = stored(workspace, draft.draft_id)
    assert torch.equal(renoised.blocks[0].canvas.pinned, mask)
    assert torch.equal(after[0][0][mask], tokens)  # the pinned positions hold the same tokens
    assert all(map(same, after[1:], before[1:]))


def test_retarget_saves_targets_redrafts_from_them_and_keeps_pins(workspace, drafter, draft):
    nda = next(r for r in workspace.library.documents() if r.filename == "nda.pdf")
    pinned = pin_half(workspace, drafter, draft, 2)
    mask = pinned.blocks[2].canvas.pinned.clone()
    tokens = pinned.blocks[2].canvas.tokens[mask].clone()
    before = blocks(pinned)

    retargeted, _ = workspace.retarget(draft.draft_id, 2, [nda.doc_id], strength=0.5)
    assert workspace.drafts.load(draft.draft_id).blocks[2].targets == [nda.doc_id]
    with workspace.running(draft.draft_id):
        list(drafter.run(retargeted, only=[2]))
    assert {hit.doc_id for hit in retargeted.blocks[2].evidence} == {nda.doc_id}
    after = stored(workspace, draft.draft_id)
    assert torch.equal(after[2][0][mask], tokens)
    assert all(map(same, after[:2], before[:2]))


def test_a_running_draft_refuses_every_operation_from_any_thread(workspace, draft):
    before = stored(workspace, draft.draft_id)
    operations = [
        lambda: workspace.pin(draft.draft_id, 0, 0, 3),
        lambda: workspace.unpin(draft.draft_id, 0, 0, 3),
        lambda: workspace.edit(draft.draft_id, 0, "by hand"),
        lambda: workspace.rerun(draft.draft_id, 0),
        lambda: workspace.retarget(draft.draft_id, 0, []),
    ]
    refused: list[str] = []

    def attempt_all() -> None:
        for operation in operations:
            try:
                operation()
            except DraftError as error:
                refused.append(str(error))

    with workspace.running(draft.draft_id):
        attempt_all()
        thread = threading.Thread(target=attempt_all)
        thread.start()
        thread.join()
        with pytest.raises(DraftError, match="already running"), workspace.running(draft.draft_id):
            pass
    assert refused == ["the draft is running: pause it before changing it"] * 10
    assert all(map(same, stored(workspace, draft.draft_id), before))
    workspace.pin(draft.draft_id, 0, 0, 3)  # the run is over: operations work again
    with workspace.running(draft.draft_id):  # and an operation releases the draft when done
        pass


def test_wrong_requests_get_one_clear_error(workspace, draft):
    for operation, reason in (
        (lambda: workspace.pin("nope", 0, 0, 3), "no draft 'nope'"),
        (lambda: workspace.pin("../../etc/passwd", 0, 0, 3), "no draft '../../etc/passwd'"),
        (lambda: workspace.edit(draft.draft_id, 3, "text"), "no block 4"),
        (lambda: workspace.rerun(draft.draft_id, -1), "no block 0"),
        (lambda: workspace.rerun(draft.draft_id, 0, strength=1.5), "between 0 and 1"),
        (lambda: workspace.retarget(draft.draft_id, 0, ["not-a-doc"]), "no document"),
        (lambda: workspace.edit(draft.draft_id, 0, "   "), "cannot be empty"),
    ):
        with pytest.raises(DraftError, match=reason):
            operation()
