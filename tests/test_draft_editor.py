"""Reading and editing a stored draft loads its model's tokenizer, never its weights: a draft
of an 8B model must open and take an edit in seconds. The tokenizer loaded alone must be the
very one the denoiser drafts with, for every family, or the stored tokens would read wrong."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from dream_checkpoints import write_dream_checkpoint
from fast_dllm_v2_checkpoints import write_fast_dllm_v2_checkpoint
from llada_checkpoints import write_dense_checkpoint
from sdar_checkpoints import write_sdar_checkpoint

from engine.denoiser import load_denoiser, load_tokenizer
from engine.draft import Draft
from engine.draft_editor import DraftEditor
from engine.drafting import Drafter
from engine.model_loading import MODEL_LOADS
from engine.models import Denoisers
from engine.testmodels import build_remote_code_stub, build_tiny_bert, build_tiny_modernbert
from engine.workspace import Workspace

CHECKPOINTS = {
    "bert": build_tiny_bert,
    "modernbert": build_tiny_modernbert,
    "remote code": build_remote_code_stub,
    "llada": write_dense_checkpoint,
    "dream": write_dream_checkpoint,
    "sdar": write_sdar_checkpoint,
    "fast-dllm-v2": write_fast_dllm_v2_checkpoint,
}
TEXT = "Either party may terminate this Agreement on thirty (30) days' written notice."


@pytest.mark.parametrize("family", list(CHECKPOINTS))
def test_the_tokenizer_loaded_alone_is_the_one_the_denoiser_drafts_with(tmp_path, family):
    folder = CHECKPOINTS[family](tmp_path / family)
    alone = load_tokenizer(folder)
    drafting = load_denoiser(folder).tokenizer
    assert type(alone) is type(drafting)
    ids = drafting(TEXT, add_special_tokens=False)["input_ids"]
    assert alone(TEXT, add_special_tokens=False)["input_ids"] == ids
    assert alone.decode(ids) == drafting.decode(ids)
    assert alone.all_special_ids == drafting.all_special_ids
    assert alone.get_vocab() == drafting.get_vocab()


def fresh_workspace(workspace: Workspace) -> Workspace:
    """The library folder as a new process opens it: no model loaded yet."""
    return Workspace(
        workspace.settings,
        embedder=workspace.library.embedder,
        denoisers=Denoisers(workspace.settings.library_dir / "models"),
    )


def test_opening_pinning_editing_and_reviewing_load_no_model(
    workspace: Workspace, drafter: Drafter, draft: Draft
):
    model = draft.settings.model
    fresh = fresh_workspace(workspace)
    opened, editor = fresh.open(draft.draft_id)
    assert type(editor) is DraftEditor
    assert [b.text for b in editor.decode(opened)] == [b.text for b in drafter.decode(draft)]

    text = drafter.text(draft, 0)
    pinned, _ = fresh.pin(draft.draft_id, 0, 0, len(text) // 2)
    assert pinned.blocks[0].canvas.pinned.any()
    edited, editor = fresh.edit(draft.draft_id, 1, "either party may end it on ninety days")
    assert editor.text(edited, 1) == "either party may end it on ninety days"
    assert edited.blocks[1].redline == drafter.text(draft, 1)
    assert edited.blocks[1].citations is not None  # cited, as an edit in the app is
    rejected, editor = fresh.reject(draft.draft_id, 1)
    assert editor.text(rejected, 1) == drafter.text(draft, 1)
    fresh.edit(draft.draft_id, 2, "the supplier returns the customer's data")
    accepted, editor = fresh.accept(draft.draft_id, 2)
    assert accepted.blocks[2].redline is None
    assert fresh.to_json(editor, accepted)["blocks"][2]["text"].startswith("the supplier")
    assert not fresh.denoisers.loaded(model)

    renoised, drafter_again = fresh.rerun(draft.draft_id, 2)  # a re-run drafts next: the model
    assert isinstance(drafter_again, Drafter) and fresh.denoisers.loaded(model)
    assert torch.equal(renoised.blocks[0].canvas.pinned, pinned.blocks[0].canvas.pinned)


def test_a_model_loading_blocks_neither_its_tokenizer_nor_questions_about_it(tmp_path):
    """The warm-up may spend minutes on an 8B model: meanwhile a user opens a draft (its
    tokenizer) and the page asks what is loaded; neither may wait for the weights."""
    folder = str(build_tiny_bert(tmp_path / "tiny-bert"))
    denoisers = Denoisers(tmp_path / "models")
    with ThreadPoolExecutor(max_workers=2) as pool:
        with MODEL_LOADS:  # another model is loading: the load below waits its turn
            loading = pool.submit(denoisers.get, folder)
            time.sleep(1.0)  # time for the load to take its own turn and wait on the lock
            assert not loading.done()
            tokenizer = pool.submit(denoisers.tokenizer, folder).result(timeout=60)
            assert tokenizer("notice")["input_ids"]
            assert not denoisers.loaded(folder)
            assert denoisers.family(folder) is not None
        assert loading.result(timeout=60).tokenizer.get_vocab() == tokenizer.get_vocab()
    assert denoisers.tokenizer(folder) is denoisers.get(folder).tokenizer  # the loaded one's
