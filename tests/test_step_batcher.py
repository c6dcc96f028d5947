"""Concurrent drafts' steps share forward passes (engine/step_batcher.py), on tiny real models.

The reference for a batched result is the same denoiser called alone with the same rows,
`denoiser.logits(input_ids, attention_mask, positions)`: rows padded into a wider batch match it
up to float rounding, hence the 1e-5 tolerance.

The only stand-in is `Counting`, a wrapper around a real tiny model that records the rows of each
pass and can hold a pass (`before_pass`) until the test has queued what the next pass must hold:
that makes the grouping of requests into passes deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from drafting_fixtures import HEADINGS, INSTRUCTION, draft_settings
from sdar_checkpoints import write_sdar_checkpoint
from torch import Tensor

from engine.config import Settings
from engine.denoiser import Denoiser, build_prompt_ids, load_denoiser
from engine.drafting import Drafter
from engine.models import Denoisers
from engine.sampler import Canvas, pack_batch
from engine.step_batcher import StepBatcher
from engine.testmodels import build_tiny_modernbert

TOLERANCE = 1e-5
Inputs = tuple[Tensor, Tensor, Tensor]


class Counting:
    """A real denoiser recording the rows of every pass; `before_pass(rows)`, when set, runs on
    the thread running the pass, before it, and may block. With `failing`, passes raise."""

    def __init__(self, inner: Denoiser):
        self.inner = inner
        self.rows: list[int] = []
        self.before_pass: Callable[[int], None] | None = None
        self.failing = False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        if self.before_pass is not None:
            self.before_pass(input_ids.shape[0])
        self.rows.append(input_ids.shape[0])
        if self.failing:
            raise RuntimeError("out of memory in the forward pass")
        return self.inner.logits(input_ids, attention_mask, positions)


class Call(threading.Thread):
    """`function(*args)` on a thread of its own, started at once."""

    def __init__(self, function: Callable, *args: object):
        super().__init__(daemon=True)
        self.function, self.args = function, args
        self.result: object = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.function(*self.args)
        except BaseException as error:  # inspected by the test
            self.error = error

    def outcome(self) -> object:
        self.join(timeout=120)
        assert not self.is_alive(), "a caller hung"
        return self.error if self.error is not None else self.result


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def queued(batcher: StepBatcher, count: int) -> bool:
    return wait_until(lambda: batcher.waiting == count)


def step_inputs(denoiser: Denoiser, shapes: list[tuple[int, int]]) -> list[Inputs]:
    """Step inputs as a draft packs them (`pack_batch`), one per (rows, canvas tokens): rows
    whose prompts and canvases differ in length, so each request has its own width."""
    aligned = getattr(denoiser, "block_size", None) is not None
    sub_block = getattr(denoiser, "block_size", None) or 0
    made = []
    for r, (rows, tokens) in enumerate(shapes):
        prompts = [
            build_prompt_ids(denoiser.tokenizer, None, f"Section {r}.{i}. " + "notice " * (3 * r))
            for i in range(rows)
        ]
        canvases = [Canvas.empty(tokens + 3 * i, denoiser.mask_token_id) for i in range(rows)]
        made.append(pack_batch(prompts, canvases, denoiser.pad_token_id, sub_block, aligned))
    return made


def first_alone_then_together(
    batcher: StepBatcher, counting: Counting, inputs: list[Inputs]
) -> list[object]:
    """inputs[0] is served alone, its pass held until every other input is queued: the others
    then go, in order, into the next passes. Outcomes in input order."""
    held, release = threading.Event(), threading.Event()

    def hold_first(rows: int) -> None:
        if not held.is_set():
            held.set()
            release.wait(timeout=60)

    counting.before_pass = hold_first
    calls = [Call(batcher.logits, *inputs[0])]
    assert held.wait(timeout=30)
    for x in inputs[1:]:
        calls.append(Call(batcher.logits, *x))
        assert queued(batcher, len(calls) - 1)  # so the arrival order is the input order
    release.set()
    outcomes = [call.outcome() for call in calls]
    counting.before_pass = None
    return outcomes


@pytest.fixture(scope="module")
def bert(tiny_model: Path) -> Denoiser:
    return load_denoiser(tiny_model, device="cpu")


@pytest.fixture(scope="module", params=["bert", "modernbert", "sdar"])
def any_model(request, tmp_path_factory, bert: Denoiser) -> Denoiser:
    """The adapters whose padding differs: BERT, ModernBERT (sliding window), and a
    block-causal SDAR, whose exact KV cache keeps state between calls."""
    if request.param == "bert":
        return bert
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "modernbert":
        return load_denoiser(build_tiny_modernbert(folder / "m"), device="cpu")
    return load_denoiser(write_sdar_checkpoint(folder / "s", dtype=torch.float32), device="cpu")


def test_a_single_caller_is_served_by_the_model_as_it_is(bert: Denoiser):
    """Alone, a request is passed through untouched: the very same logits, bit for bit."""
    batcher = StepBatcher(bert)
    (inputs,) = step_inputs(bert, [(3, 20)])
    assert torch.equal(batcher.logits(*inputs), bert.logits(*inputs))
    assert (batcher.passes, batcher.requests) == (1, 1)


def test_concurrent_requests_of_different_widths_share_a_pass(any_model: Denoiser):
    inputs = step_inputs(any_model, [(1, 12), (2, 30), (3, 7), (1, 18)])
    alone = [any_model.logits(*x) for x in inputs]
    counting = Counting(any_model)
    batcher = StepBatcher(counting)
    outcomes = first_alone_then_together(batcher, counting, inputs)
    assert counting.rows == [1, 2 + 3 + 1]  # the three queued requests: one pass
    assert len({x[0].shape[1] for x in inputs}) == len(inputs)  # every width differs
    for got, expected in zip(outcomes, alone, strict=True):
        assert isinstance(got, Tensor) and got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)


def test_drafts_stepping_together_run_fewer_passes(bert: Denoiser):
    """Four drafts' loops take each step together (a barrier); each pass is held until every
    step of that round is either in it or queued, so a round takes at most two passes (the
    first arrivals, then all the rest) instead of four turns."""
    drafts, steps = 4, 3
    inputs = step_inputs(bert, [(1, 10 + 4 * d) for d in range(drafts)])
    alone = [bert.logits(*x) for x in inputs]
    counting = Counting(bert)
    batcher = StepBatcher(counting)
    barrier = threading.Barrier(drafts)

    def hold_until_round_queued(rows: int) -> None:
        """A round is `drafts` one-row requests and never overlaps the next (the barrier), so
        the steps of this round not in this pass are those still to be queued."""
        left_in_round = drafts - sum(counting.rows) % drafts - rows
        assert wait_until(lambda: batcher.waiting >= left_in_round)

    counting.before_pass = hold_until_round_queued

    def draft_loop(d: int) -> list[Tensor]:
        got = []
        for _ in range(steps):
            barrier.wait(timeout=60)
            got.append(batcher.logits(*inputs[d]))
        return got

    calls = [Call(draft_loop, d) for d in range(drafts)]
    outcomes = [call.outcome() for call in calls]
    assert batcher.requests == drafts * steps
    assert batcher.passes <= 2 * steps < drafts * steps
    for got, expected in zip(outcomes, alone, strict=True):
        assert not isinstance(got, BaseException), got
        for logits in got:
            torch.testing.assert_close(logits, expected, atol=TOLERANCE, rtol=0)


def test_an_error_in_a_pass_reaches_every_waiting_caller(bert: Denoiser):
    inputs = step_inputs(bert, [(1, 8), (2, 9), (1, 11)])
    counting = Counting(bert)
    counting.failing = True
    batcher = StepBatcher(counting)
    outcomes = first_alone_then_together(batcher, counting, inputs)
    assert counting.rows == [1, 3]
    for outcome in outcomes:
        assert isinstance(outcome, RuntimeError)
        assert str(outcome) == "out of memory in the forward pass"
    counting.failing = False  # and the batcher still serves
    outcomes = first_alone_then_together(batcher, counting, inputs)
    for got, x in zip(outcomes, inputs, strict=True):
        torch.testing.assert_close(got, bert.logits(*x), atol=TOLERANCE, rtol=0)


def test_a_pass_holds_at_most_max_rows_in_arrival_order(bert: Denoiser):
    """With a cap of 4 rows and requests of 2: the first alone, then two per pass in the order
    they came; a request above the cap runs alone."""
    inputs = step_inputs(bert, [(2, 8 + d) for d in range(4)]) + step_inputs(bert, [(6, 5)])
    counting = Counting(bert)
    batcher = StepBatcher(counting, max_rows=4)
    outcomes = first_alone_then_together(batcher, counting, inputs)
    assert counting.rows == [2, 4, 2, 6]
    for got, x in zip(outcomes, inputs, strict=True):
        torch.testing.assert_close(got, bert.logits(*x), atol=TOLERANCE, rtol=0)


def test_concurrent_drafts_commit_what_each_commits_alone(workspace, drafter, tiny_model):
    """Three one-section drafts through one batching denoiser, on threads, against each drafted
    alone, at temperature 0. Every pass is held until each draft still running has its step in
    it or queued: the held pass runs on, and the steps queued meanwhile share the next one."""
    counting = Counting(load_denoiser(tiny_model, device="cpu"))
    batcher = StepBatcher(counting)
    batched = Drafter(workspace.library, batcher, workspace.drafts)
    settings = draft_settings(tiny_model)
    headings = HEADINGS[:3]
    alone = []
    for seed, heading in enumerate(headings):
        draft = drafter.start(INSTRUCTION, [heading], settings, seed=seed)
        list(drafter.run(draft))
        alone.append(draft.blocks[0].canvas.tokens)
    running = [len(headings)]
    lock = threading.Lock()

    def hold(rows: int) -> None:  # one row per draft's step
        wait_until(lambda: batcher.waiting + rows >= running[0], timeout_s=10)

    def draft_alone(seed: int, heading: str) -> Tensor:
        try:
            draft = batched.start(INSTRUCTION, [heading], settings, seed=seed)
            list(batched.run(draft))
            return draft.blocks[0].canvas.tokens
        finally:
            with lock:
                running[0] -= 1

    counting.before_pass = hold
    calls = [Call(draft_alone, seed, heading) for seed, heading in enumerate(headings)]
    together = [call.outcome() for call in calls]
    assert batcher.passes < batcher.requests  # steps of different drafts shared passes
    for got, expected in zip(together, alone, strict=True):
        assert isinstance(got, Tensor), got
        assert torch.equal(got, expected)


def test_batching_is_opt_in_through_the_settings(tmp_path, tiny_model, monkeypatch):
    monkeypatch.delenv("PALIMPSEST_BATCH_DRAFTS", raising=False)
    plain = Denoisers.for_settings(Settings(library_dir=tmp_path)).get(str(tiny_model))
    assert not isinstance(plain, StepBatcher)
    monkeypatch.setenv("PALIMPSEST_BATCH_DRAFTS", "1")
    monkeypatch.setenv("PALIMPSEST_BATCH_ROWS", "8")
    batched = Denoisers.for_settings(Settings(library_dir=tmp_path)).get(str(tiny_model))
    assert isinstance(batched, StepBatcher) and batched.max_rows == 8
    for name in ("mask_token_id", "pad_token_id", "end_ids", "max_length", "vocab_size", "family"):
        assert getattr(batched, name) == getattr(plain, name)
    assert batched.tokenizer is batched.inner.tokenizer
    assert getattr(batched, "block_size", None) is None  # not block-causal, as the Drafter asks


def test_the_prefix_cache_path_still_finds_its_cache(tmp_path):
    """Drafts with Fast-dLLM's prefix cache call the model through `context_cache`, which the
    batcher hands through: they are served unbatched, as before."""
    denoiser = load_denoiser(build_tiny_modernbert(tmp_path / "m"), device="cpu")
    batcher = StepBatcher(denoiser)
    assert batcher.context_cache is denoiser.context_cache is not None


def test_drafts_out_of_phase_are_brought_into_one_pass(bert: Denoiser):
    """Two callers in closed loops, the second arriving while the first one's pass runs: without
    waiting for the last pass's callers they would alternate, one step per pass (8 passes);
    the batcher holds the second until the first is back, and they share every pass after."""
    inputs = step_inputs(bert, [(1, 9), (1, 13)])
    counting = Counting(bert)
    batcher = StepBatcher(counting)
    first_pass = threading.Event()

    def slow(rows: int) -> None:  # a pass long next to a loop's turn-around
        first_pass.set()
        time.sleep(0.3)

    counting.before_pass = slow
    steps = 4

    def loop(x: Inputs) -> list[Tensor]:
        return [batcher.logits(*x) for _ in range(steps)]

    first = Call(loop, inputs[0])
    assert first_pass.wait(timeout=30)
    second = Call(loop, inputs[1])
    assert not isinstance(first.outcome(), BaseException)
    assert not isinstance(second.outcome(), BaseException)
    assert counting.rows == [1, 2, 2, 2, 1]
