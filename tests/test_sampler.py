"""Sampler invariants (DESIGN section 2) on synthetic logits: no model needed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.draft import canvas_text
from engine.sampler import (
    ORDERS,
    Canvas,
    SamplerSettings,
    State,
    choose,
    order_scores,
    pack_batch,
    pin,
    propose,
    refine,
    renoise,
    step,
    tokens_to_commit,
    unpin,
)
from engine.testmodels import minilm_tokenizer, train_tiny_tokenizer

VOCAB = 40
MASK = 39
FORBIDDEN = torch.tensor([0, 1, MASK])


def fake_logits(n: int, generator: torch.Generator) -> torch.Tensor:
    """Random logits in which the forbidden ids are the most likely by far."""
    logits = torch.randn(n, VOCAB, generator=generator)
    logits[:, FORBIDDEN] += 20.0
    return logits


def canvas_with_pins(length: int, pins: list[int], generator: torch.Generator) -> Canvas:
    """A canvas whose `pins` positions hold pinned user text; the rest is masked."""
    tokens = torch.full((length,), MASK)
    pinned = [p for p in pins if p < length]
    tokens[pinned] = torch.randint(2, MASK, (len(pinned),), generator=generator)
    return Canvas.from_tokens(tokens, MASK, state=State.PINNED)


def run(
    canvases: list[Canvas],
    steps: int,
    sampler: SamplerSettings,
    generator: torch.Generator,
    logits_generator: torch.Generator,
    start: int = 0,
    stop: int | None = None,
) -> list[list[Canvas]]:
    """Steps `start`..`stop-1` of a `steps`-step run; returns the canvases after every step."""
    history = [canvases]
    i = start
    # the threshold rule is not bounded by the step budget (Fast-dLLM): it runs until done
    while i < (steps if stop is None else stop) or (
        stop is None and sampler.threshold is not None and any(c.n_masked for c in canvases)
    ):
        n = sum(c.n_masked for c in canvases)
        canvases = step(
            canvases,
            fake_logits(n, logits_generator),
            steps_left=[max(steps - i, 1)] * len(canvases),
            step_index=[i] * len(canvases),
            settings=sampler,
            forbidden=FORBIDDEN,
            generator=generator,
        )
        history.append(canvases)
        i += 1
    return history


sampler_settings = st.builds(
    SamplerSettings,
    temperature=st.sampled_from([0.0, 0.7, 1.0]),
    order=st.sampled_from(ORDERS),
    threshold=st.sampled_from([None, 0.3, 0.9]),
)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 24), min_size=1, max_size=4),
    pins=st.lists(st.integers(0, 23), max_size=6),
    steps=st.integers(1, 12),
    sampler=sampler_settings,
    seed=st.integers(0, 2**16),
)
def test_step_invariants(lengths, pins, steps, sampler, seed):
    rng = torch.Generator().manual_seed(seed)
    canvases = [canvas_with_pins(length, pins, rng) for length in lengths]
    history = run(canvases, steps, sampler, torch.Generator().manual_seed(seed), rng)

    for before, after in zip(history, history[1:], strict=False):
        for old, new in zip(before, after, strict=True):
            kept = ~old.masked
            # never writes into a non-MASKED position; PINNED never changes
            assert torch.equal(new.tokens[kept], old.tokens[kept])
            assert torch.equal(new.state[kept], old.state[kept])
            assert torch.equal(new.commit_step[kept], old.commit_step[kept])
            assert torch.equal(new.confidence[kept], old.confidence[kept])
            # masks never grow, and a step with masks left commits at least one
            assert new.n_masked < old.n_masked or old.n_masked == 0
            # forbidden ids are never committed
            assert not torch.isin(new.tokens[~new.masked], FORBIDDEN[FORBIDDEN != MASK]).any()
            assert torch.equal(new.tokens == MASK, new.masked)
    # the schedule leaves no mask after the last step (the threshold runs until none is left)
    assert all(c.n_masked == 0 for c in history[-1])
    if sampler.threshold is None:
        assert len(history) == steps + 1


@given(n=st.integers(0, 300), steps=st.integers(1, 40))
def test_schedule_finishes_exactly_on_the_last_step(n, steps):
    counts = []
    remaining = n
    for left in range(steps, 0, -1):
        k = tokens_to_commit(remaining, left)
        counts.append(k)
        remaining -= k
    assert remaining == 0 and sum(counts) == n
    # LLaDA's precomputed linear schedule: n // steps each, the remainder on the first steps
    assert counts == [n // steps + (1 if i < n % steps else 0) for i in range(steps)]


def test_schedule_with_more_masks_than_steps_ends_on_last_step():
    canvases = [Canvas.empty(30, MASK)]
    history = run(canvases, 7, SamplerSettings(), torch.Generator(), torch.Generator())
    assert [c[0].n_masked for c in history] == [30, 25, 20, 16, 12, 8, 4, 0]


@settings(max_examples=15, deadline=None)
@given(sampler=sampler_settings, seed=st.integers(0, 2**16))
def test_determinism_given_seed(sampler, seed):
    def once():
        start = [Canvas.empty(17, MASK), Canvas.empty(5, MASK)]
        generator = torch.Generator().manual_seed(seed)
        return run(start, 6, sampler, generator, torch.Generator().manual_seed(seed + 1))[-1]

    first, second = once(), once()
    assert all(a.equals(b) for a, b in zip(first, second, strict=True))


def test_different_seeds_sample_differently():
    def once(seed):
        start = [Canvas.empty(40, MASK)]
        sampler = SamplerSettings(temperature=1.0, order="random")
        return run(start, 5, sampler, torch.Generator().manual_seed(seed), torch.Generator())[-1]

    assert not once(1)[0].equals(once(2)[0])


def test_generator_state_save_and_restore_resumes_exactly():
    sampler = SamplerSettings(temperature=0.8, order="random")
    start = [Canvas.empty(20, MASK), Canvas.empty(9, MASK)]
    steps = 8

    whole = run(start, steps, sampler, torch.Generator().manual_seed(7), torch.Generator())

    generator, logits_generator = torch.Generator().manual_seed(7), torch.Generator()
    partial = run(start, steps, sampler, generator, logits_generator, stop=3)[-1]
    saved = (generator.get_state(), logits_generator.get_state())  # what a draft persists
    generator, logits_generator = torch.Generator(), torch.Generator()
    generator.set_state(saved[0])
    logits_generator.set_state(saved[1])
    resumed = run(partial, steps, sampler, generator, logits_generator, start=3)[-1]

    assert all(a.equals(b) for a, b in zip(whole[-1], resumed, strict=True))


def test_propose_argmax_and_sampling_never_pick_forbidden_ids():
    generator = torch.Generator().manual_seed(0)
    logits = fake_logits(200, generator)
    for temperature in (0.0, 1.0, 5.0):
        proposal = propose(logits, temperature, generator, FORBIDDEN)
        assert not torch.isin(proposal.x0, FORBIDDEN).any()
        assert ((proposal.confidence > 0) & (proposal.confidence <= 1)).all()
    allowed = logits.clone()
    allowed[:, FORBIDDEN] = float("-inf")
    proposal = propose(logits, 0.0, None, FORBIDDEN)
    assert torch.equal(proposal.x0, allowed.argmax(-1))
    assert torch.allclose(proposal.confidence, torch.softmax(allowed, -1).max(-1).values)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_follows_the_tempered_distribution(temperature):
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).expand(40_000, -1)
    x0 = propose(logits, temperature, torch.Generator().manual_seed(0)).x0
    frequencies = torch.bincount(x0, minlength=5) / x0.numel()
    expected = torch.softmax(logits[0] / temperature, -1)
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)


def test_order_scores():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    logits = probs.log()
    proposal = propose(logits)
    x0, confidence = proposal.x0, proposal.confidence
    assert torch.allclose(order_scores("low_confidence", logits, x0, confidence), confidence)
    assert torch.allclose(order_scores("maskgit_plus", logits, x0, confidence), confidence)
    assert torch.allclose(
        order_scores("margin", logits, x0, confidence), torch.tensor([0.5, 0.05]), atol=1e-6
    )
    entropy = order_scores("entropy", logits, x0, confidence)
    assert entropy[0] > entropy[1]  # the peaked distribution is the surer one
    generator = torch.Generator().manual_seed(3)
    random = order_scores("random", logits, x0, confidence, generator)
    assert torch.equal(random, torch.rand(2, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError):
        order_scores("alphabetical", logits, x0, confidence)


def test_threshold_commits_the_best_and_every_proposal_over_tau():
    confidence = torch.tensor([0.2, 0.95, 0.5, 0.91, 0.1])
    assert sorted(choose(confidence, confidence, None, 0.9).tolist()) == [1, 3]
    assert choose(confidence, confidence, None, 0.99).tolist() == [1]  # always at least one
    # the schedule's count does not bound the threshold (Fast-dLLM's rule)
    assert choose(confidence, confidence, 3, 0.99).tolist() == [1]
    assert choose(confidence, confidence, 3, None).tolist() == [1, 3, 2]
    with pytest.raises(ValueError):
        choose(confidence, confidence, None, None)


def test_refine_remasks_lowest_confidence_committed_never_pinned():
    canvas = Canvas.from_tokens([5, 6, 7, 8, 9], MASK)
    canvas = Canvas(
        tokens=canvas.tokens,
        state=canvas.state,
        commit_step=canvas.commit_step,
        confidence=torch.tensor([0.9, 0.1, 0.5, 0.05, 0.3]),
        mask_id=MASK,
    )
    canvas = pin(canvas, [3])  # the least confident one, but pinned
    refined = refine(canvas, 2)
    assert refined.masked.nonzero().squeeze(1).tolist() == [1, 4]
    assert refined.tokens[3] == 8 and refined.state[3] == State.PINNED
    assert refine(canvas, 100).n_masked == 4


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(0, 30),
    pins=st.lists(st.integers(0, 29), max_size=10),
    strength=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_renoise_touches_only_unpinned_positions(length, pins, strength, seed):
    rng = torch.Generator().manual_seed(seed)
    canvas = Canvas.from_tokens(torch.randint(2, MASK, (length,), generator=rng), MASK)
    canvas = pin(canvas, [p for p in pins if p < length])
    noisy = renoise(canvas, strength, torch.Generator().manual_seed(seed))
    again = renoise(canvas, strength, torch.Generator().manual_seed(seed))
    assert noisy.equals(again)
    assert torch.equal(noisy.tokens[canvas.pinned], canvas.tokens[canvas.pinned])
    assert torch.equal(noisy.state[canvas.pinned], canvas.state[canvas.pinned])
    n_unpinned = int((~canvas.pinned).sum())
    assert noisy.n_masked == int(strength * n_unpinned + 0.5)
    if strength == 1.0:
        assert torch.equal(noisy.masked, ~canvas.pinned)


def test_pin_and_unpin():
    canvas = Canvas.from_tokens([5, MASK, 7], MASK)
    with pytest.raises(ValueError):
        pin(canvas, [1])
    pinned = pin(canvas, torch.tensor([True, False, True]))
    assert pinned.state.tolist() == [State.PINNED, State.MASKED, State.PINNED]
    assert unpin(pinned, [0, 1]).state.tolist() == [State.COMMITTED, State.MASKED, State.PINNED]
    assert canvas.state.tolist() == [State.COMMITTED, State.MASKED, State.COMMITTED]  # untouched


@pytest.mark.parametrize(
    "bad", [{"temperature": -1.0}, {"order": "alphabetical"}, {"threshold": 0.0}]
)
def test_settings_are_validated(bad):
    with pytest.raises(ValueError):
        SamplerSettings(**bad)


def test_pack_batch_lines_up_rows_with_the_masked_positions():
    canvases = [Canvas.from_tokens([5, MASK, 6, MASK], MASK), Canvas.from_tokens([MASK, 7], MASK)]
    input_ids, attention_mask, positions = pack_batch([[2, 3, 4], [2]], canvases, pad_token_id=0)
    assert input_ids.tolist() == [[2, 3, 4, 5, MASK, 6, MASK], [2, MASK, 7, 0, 0, 0, 0]]
    assert attention_mask.tolist() == [[1] * 7, [1, 1, 1, 0, 0, 0, 0]]
    assert positions.nonzero().tolist() == [[0, 4], [0, 6], [1, 1]]


def test_step_rejects_logits_that_do_not_match_the_masks():
    with pytest.raises(ValueError):
        step(
            [Canvas.empty(4, MASK)],
            torch.zeros(3, VOCAB),
            steps_left=[2],
            step_index=[0],
        )


@pytest.mark.parametrize("make_tokenizer", [minilm_tokenizer, train_tiny_tokenizer])
def test_render_trims_padding_and_end_of_turn_and_shows_masks(make_tokenizer):
    tokenizer = make_tokenizer()
    words = tokenizer("Either party may terminate", add_special_tokens=False)["input_ids"]
    end = tokenizer("\n[/Answer]", add_special_tokens=False)["input_ids"]
    pad, mask = tokenizer.pad_token_id, tokenizer.mask_token_id
    canvas = Canvas.from_tokens(words + end + [pad] * 4, mask)
    assert canvas_text(tokenizer, canvas, show_masks=False).lower() == "either party may terminate"

    with_holes = Canvas.from_tokens([words[0], mask, mask, *words[1:], pad, pad], mask)
    view = canvas_text(tokenizer, with_holes, show_masks=True)
    assert view.count("▒") == 2 and view.lower().startswith("either")
    assert "▒" not in canvas_text(tokenizer, with_holes, show_masks=False)
