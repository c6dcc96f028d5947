"""The cached-context forward for ModernBERT: exact where it must be, and safe to draft with."""

from __future__ import annotations

import pytest
import torch
from drafting_fixtures import HEADINGS, INSTRUCTION, draft_settings
from transformers import ModernBertForMaskedLM

from engine.context_cache import ModernBertContextCache
from engine.denoiser import HFMaskedLMDenoiser
from engine.sampler import pack_batch
from engine.testmodels import build_tiny_modernbert


@pytest.fixture(scope="module")
def modernbert(tmp_path_factory) -> HFMaskedLMDenoiser:
    return HFMaskedLMDenoiser(build_tiny_modernbert(tmp_path_factory.mktemp("m") / "tiny"))


def ragged(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def test_the_uncached_path_equals_the_library_forward(modernbert):
    cache = modernbert.context_cache
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(5, 400, (n,), generator=generator).tolist() for n in (90, 60, 75)]
    ids, mask = ragged(rows, pad=0)
    expected = modernbert.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    got = cache.exact_hidden(ids, mask)
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_one_layer_model_cached_equals_exact(tmp_path):
    """With one layer the prompt's keys and values cannot depend on the canvas, so the cache is
    exact: this checks positions, masks and padding of the cached path."""
    folder = build_tiny_modernbert(tmp_path / "m")
    model = ModernBertForMaskedLM.from_pretrained(
        folder, num_hidden_layers=1, layer_types=["full_attention"]
    ).eval()
    cache = ModernBertContextCache(model)
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(5, 400, (n,), generator=generator).tolist() for n in (50, 31)]
    canvases = [torch.randint(5, 400, (n,), generator=generator).tolist() for n in (12, 9)]
    ids, mask = ragged([p + c for p, c in zip(prompts, canvases, strict=True)], pad=0)
    exact = cache.exact_hidden(ids, mask)
    canvas_ids, canvas_real = ragged(canvases, pad=0)
    cached = cache.canvas_hidden(cache.encode_prompts(prompts, 0), canvas_ids, canvas_real)
    for row, (prompt, canvas) in enumerate(zip(prompts, canvases, strict=True)):
        start = len(prompt)
        assert torch.allclose(
            cached[row, : len(canvas)], exact[row, start : start + len(canvas)], atol=1e-5
        )


def test_cached_proposals_stay_close_to_exact_on_the_tiny_model(modernbert):
    from engine.sampler import Canvas

    cache = modernbert.context_cache
    generator = torch.Generator().manual_seed(2)
    prompts = [torch.randint(5, 400, (80,), generator=generator).tolist() for _ in range(3)]
    canvases = [Canvas.empty(24, modernbert.mask_token_id) for _ in range(3)]
    ids, mask, positions = pack_batch(prompts, canvases, 0)
    exact = modernbert.logits(ids, mask, positions)
    canvas_ids, canvas_real, canvas_positions = pack_batch([[]] * 3, canvases, 0)
    hidden = cache.canvas_hidden(cache.encode_prompts(prompts, 0), canvas_ids, canvas_real)
    cached = cache.head(hidden[canvas_positions])
    assert cached.shape == exact.shape
    agreement = (cached.argmax(-1) == exact.argmax(-1)).float().mean()
    assert agreement > 0.9


@pytest.mark.parametrize("int8", [False, True])
def test_drafting_with_the_cache_resumes_exactly_and_keeps_pins(workspace, tmp_path, int8):
    from engine.draft import pin_selection

    folder = build_tiny_modernbert(tmp_path / "drafting-model")
    drafter = workspace.drafter(str(folder), int8=int8)
    assert drafter.context_cache is not None
    settings = draft_settings(folder, temperature=0.5, context_cache=True)
    whole = drafter.start(INSTRUCTION, HEADINGS, settings, seed=3)
    list(drafter.run(whole))
    paused = drafter.start(INSTRUCTION, HEADINGS, settings, seed=3)
    list(drafter.run(paused, stop_after=3))
    reloaded, fresh = workspace.open(paused.draft_id)
    list(fresh.run(reloaded))
    for a, b in zip(whole.blocks, reloaded.blocks, strict=True):
        assert a.canvas.equals(b.canvas)
    text = drafter.text(whole, 0)
    pin_selection(drafter.tokenizer, whole.blocks[0], 0, max(1, len(text) // 3))
    pinned = whole.blocks[0].canvas.pinned.clone()
    tokens = whole.blocks[0].canvas.tokens[pinned].clone()
    drafter.rerun(whole, 0)
    list(drafter.run(whole, only=[0]))
    assert torch.equal(whole.blocks[0].canvas.tokens[pinned], tokens)
