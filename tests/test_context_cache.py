"""Fast-dLLM's prefix cache for ModernBERT: exact where the rule says it is (the first step of an
epoch, the layer loop, resume), close elsewhere, and really used."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from drafting_fixtures import HEADINGS, INSTRUCTION, draft_settings
from transformers import ModernBertForMaskedLM

import engine.drafting
from engine.context_cache import ModernBertContextCache, PrefixCache, epoch_tokens
from engine.denoiser import HFMaskedLMDenoiser
from engine.draft import pin_selection
from engine.sampler import Canvas, State, active, pack_batch
from engine.testmodels import build_tiny_modernbert

# three sub-blocks per canvas, prompts rebuilt every 2 steps: epochs start at sub-block starts and
# in the middle of sub-blocks
CACHED = dict(context_cache=True, block_tokens=24, sub_block=8, steps=9, refresh_every=2)
# one token per step, prompts rebuilt every 4 steps: epochs of up to 4 steps, mostly cached
LONG = dict(context_cache=True, block_tokens=24, sub_block=8, steps=24, refresh_every=4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_modernbert(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def modernbert(folder) -> HFMaskedLMDenoiser:
    return HFMaskedLMDenoiser(folder)


def ragged(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def exact_logits(cache: ModernBertContextCache, prompt: list[int], canvas: Canvas, sub_block: int):
    """The uncached logits of one block alone, through the same layer loop."""
    ids = torch.tensor(prompt + canvas.tokens.tolist())[None]
    hidden = cache.exact_hidden(ids, torch.ones_like(ids))
    return cache.head(hidden[0, len(prompt) :][active(canvas, sub_block)])


def test_the_uncached_path_equals_the_library_forward(modernbert):
    cache = modernbert.context_cache
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(5, 400, (n,), generator=generator).tolist() for n in (90, 60, 75)]
    ids, mask = ragged(rows, pad=0)
    expected = modernbert.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    got = cache.exact_hidden(ids, mask)
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_one_layer_model_tail_pass_equals_exact(folder):
    """With one layer a prefix's keys and values cannot depend on what follows it, so a tail
    pass over a prefix cached from another canvas is exact: this checks the positions, masks and
    padding of a ragged tail batch."""
    model = ModernBertForMaskedLM.from_pretrained(
        folder, num_hidden_layers=1, layer_types=["full_attention"]
    ).eval()
    cache = ModernBertContextCache(model)
    generator = torch.Generator().manual_seed(1)

    def rand(n: int) -> list[int]:
        return torch.randint(5, 400, (n,), generator=generator).tolist()

    prompts, done, tails = [rand(50), rand(31)], [rand(8), rand(0)], [rand(12), rand(9)]
    parts = []
    for prompt, head in zip(prompts, done, strict=True):
        ids = torch.tensor(prompt + head + rand(5))  # another tail than the one run below
        _, (keys, values) = cache.full_pass(ids, len(prompt) + len(head), None)
        parts.append(PrefixCache((), keys, values))
    wanted = [torch.ones(len(tail), dtype=torch.bool) for tail in tails]
    cached = cache.tail_pass(cache.stack(parts, 12), [torch.tensor(t) for t in tails], wanted)
    rows = [p + h + t for p, h, t in zip(prompts, done, tails, strict=True)]
    ids, mask = ragged(rows, pad=0)
    hidden = cache.exact_hidden(ids, mask)
    starts = [len(p) + len(h) for p, h in zip(prompts, done, strict=True)]
    exact = torch.cat([cache.head(hidden[row, s : len(rows[row])]) for row, s in enumerate(starts)])
    assert torch.allclose(cached, exact, atol=1e-5)


def test_epoch_tokens_mask_what_was_committed_later():
    canvas = Canvas.from_tokens([7, 8, 9, 10], mask_id=4, step=0)
    canvas = Canvas(
        canvas.tokens,
        canvas.state.index_fill(0, torch.tensor([3]), State.PINNED),
        torch.tensor([0, 3, 5, 6]),
        canvas.confidence,
        mask_id=4,
    )
    assert epoch_tokens(canvas, 5).tolist() == [7, 8, 9, 4]
    assert epoch_tokens(canvas, 2).tolist() == [7, 4, 4, 4]


@dataclass
class Recorder:
    """Every step of a draft: each stepped block's prompt, canvas, whether a cache epoch started
    there, and the logits the sampler got for it."""

    draft: object = None
    steps: list[list[tuple]] = field(default_factory=list)

    def wrap(self, step):
        def recorded(canvases, logits, **kwargs):
            blocks = [b for c in canvases for b in self.draft.blocks if b.canvas is c]
            counts = [int(active(c, kwargs["settings"].sub_block).sum()) for c in canvases]
            rows = logits.split(counts)
            self.steps.append(
                [
                    (b.prompt, b.canvas, b.cache_epoch == self.draft.step, b.window_step, row)
                    for b, row in zip(blocks, rows, strict=True)
                ]
            )
            return step(canvases, logits, **kwargs)

        return recorded


def test_epoch_starts_are_exact_and_cached_steps_close(workspace, folder, monkeypatch):
    """The first step of every sub-block (and after every prompt change) equals the uncached
    logits: bit for bit through the same layer loop, and within float error of the library's
    batched forward. Cached steps keep most argmax proposals of exact recompute."""
    drafter = workspace.drafter(str(folder))
    cache = drafter.context_cache
    recorder = Recorder()
    monkeypatch.setattr(engine.drafting, "step", recorder.wrap(engine.drafting.step))
    settings = draft_settings(folder, **LONG)
    recorder.draft = draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=5)
    list(drafter.run(draft))
    assert draft.done
    agree = total = epochs = 0
    for stepped in recorder.steps:
        for prompt, canvas, started, window_step, got in stepped:
            exact = exact_logits(cache, prompt, canvas, settings.sub_block)
            if window_step == 0:
                assert started  # every sub-block starts with a full pass
            if started:
                epochs += 1
                assert torch.equal(got, exact)
                ids, mask, positions = pack_batch([prompt], [canvas], 0, settings.sub_block)
                library = drafter.denoiser.logits(ids, mask, positions)
                assert torch.allclose(got, library, atol=1e-5)
            else:
                agree += int((got.argmax(-1) == exact.argmax(-1)).sum())
                total += got.shape[0]
    steps = len(recorder.steps) * len(HEADINGS)
    print(f"epochs {epochs} of {steps} block-steps; cached argmax agreement {agree}/{total}")
    assert len(HEADINGS) * 3 <= epochs < steps and total > 0
    assert agree / total > 0.8


def run_in_pieces(workspace, drafter, settings, stops: list[int]):
    """A draft run `stops` steps at a time, reloaded from the store (as a new process would)
    before every piece; returns the finished draft."""
    draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=3)
    for stop in stops:
        list(drafter.run(draft, stop_after=stop))
        draft, drafter = workspace.open_to_run(draft.draft_id)
    list(drafter.run(draft))
    return draft


@pytest.mark.parametrize("int8", [False, True])
def test_drafting_with_the_cache_resumes_exactly_and_keeps_pins(
    workspace, folder, monkeypatch, int8
):
    drafter = workspace.drafter(str(folder), int8=int8)
    assert drafter.context_cache is not None
    settings = draft_settings(folder, temperature=0.5, **CACHED)
    rebuilt = []
    full_pass = ModernBertContextCache.full_pass

    def counted(self, ids, prefix, candidates):
        rebuilt.append(candidates is None)
        return full_pass(self, ids, prefix, candidates)

    monkeypatch.setattr(ModernBertContextCache, "full_pass", counted)
    whole = drafter.start(INSTRUCTION, HEADINGS, settings, seed=3)
    list(drafter.run(whole))
    assert not any(rebuilt)  # one run: every prefix is the one its epoch start computed
    for stops in ([3], [1, 4], [5, 1, 1]):  # at a sub-block start, and mid-epoch
        pieces = run_in_pieces(workspace, drafter, settings, stops)
        for a, b in zip(whole.blocks, pieces.blocks, strict=True):
            assert a.canvas.equals(b.canvas)
            assert a.cache_epoch == b.cache_epoch
    assert any(rebuilt)  # the resumed runs rebuilt prefixes from the saved drafts
    text = drafter.text(whole, 0)
    pin_selection(drafter.tokenizer, whole.blocks[0], 0, max(1, len(text) // 3))
    pinned = whole.blocks[0].canvas.pinned.clone()
    tokens = whole.blocks[0].canvas.tokens[pinned].clone()
    for _ in range(2):
        drafter.rerun(whole, 0)
        list(drafter.run(whole, only=[0]))
        assert whole.blocks[0].done
        assert torch.equal(whole.blocks[0].canvas.tokens[pinned], tokens)


def test_tail_passes_run_fewer_tokens_than_the_full_sequence(workspace, folder):
    """The cache is really used: counting the tokens each pass puts through the layers, only an
    epoch start runs prompt + canvas; every other step runs the tails, each at most a canvas."""
    drafter = workspace.drafter(str(folder))
    cache = drafter.context_cache
    passes: list[tuple[int, int]] = []  # (rows, tokens per row) of every pass
    layers = cache._layers

    def counted(input_ids, *args, **kwargs):
        passes.append(tuple(input_ids.shape))
        return layers(input_ids, *args, **kwargs)

    cache._layers = counted
    try:
        settings = draft_settings(folder, **LONG)
        draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=7)
        list(drafter.run(draft))
    finally:
        del cache._layers
    shortest_prompt = min(len(b.prompt) for b in draft.blocks)
    full = [p for p in passes if p[1] > settings.block_tokens]
    tails = [p for p in passes if p[1] <= settings.block_tokens]
    assert all(rows == 1 and width > shortest_prompt for rows, width in full)
    assert tails and all(rows <= len(HEADINGS) for rows, _ in tails)
    assert len(full) + len(tails) >= draft.step  # every step ran at least one pass
    cached_tokens = sum(rows * width for rows, width in passes)
    uncached_tokens = draft.step * len(HEADINGS) * (shortest_prompt + settings.block_tokens)
    print(
        f"{len(full)} full passes, {len(tails)} tail passes over {draft.step} steps; "
        f"tokens through the layers {cached_tokens} vs at least {uncached_tokens} uncached"
    )
    assert cached_tokens < uncached_tokens
