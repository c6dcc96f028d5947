"""One forward pass for the steps of every draft running at once (continuous batching).

Each running draft steps on its own thread (`Drafter.run` -> `Denoiser.logits`). Called directly,
a shared denoiser serves them in turns. `StepBatcher` wraps it behind the same `Denoiser`
protocol: a call is queued, and one pass runs everything waiting, each request's rows
right-padded to the widest one and stacked along the batch dimension; the logits come back
split by each request's count of requested positions. While a pass runs, new requests gather for
the next one. There is no thread of its own: a caller whose request is waiting while no pass runs
runs the next pass itself, for everyone queued then, so a draft running alone calls the model
from its own thread at once, with no hand-off.

Waiting for the last pass's callers. Drafts are closed loops: a draft asks for its next step
only once its last one is back. Two drafts that start a moment apart would fall into step half a
period apart, each one's request arriving while the other's pass runs, and never share a pass
(measured with bench/concurrent_drafts.py before this rule: one step per pass at 2 drafts, two at
4). So a pass does not start until as many requests have arrived since the last pass ended as
that pass served (its callers coming back), or the queue already fills a pass, or `peer_wait`
times the last pass's duration has passed (a draft that finished or paused is waited for once).
A draft alone is never held: its own return is the one awaited. There is no fixed linger window.

Fair share: a draft's loop waits for its step's logits before asking again, so it has at most
one request queued and a pass holds at most one step of each draft. A pass takes requests in
arrival order until `max_rows` rows (sections, doubled with guidance) would be exceeded, so one
huge draft cannot make every pass huge; the rest wait for the next pass, in the same order. A
request larger than the cap runs alone.

Exactness: a row padded into a wider batch gets the same logits only up to float rounding, and
which batch a step lands in depends on timing, so the bitwise exact resume of DESIGN section 2
does not hold with batching. It is opt-in (`Settings.batch_drafts`, PALIMPSEST_BATCH_DRAFTS).

Fast-dLLM's prefix cache (`DraftSettings.context_cache`, engine/context_cache.py) calls the
model's layers through its own full and tail passes, not `logits`: drafts using it are not
batched here and keep taking turns (its exactness across a resume rests on full passes that run
one block alone, so it must not be batched this way anyway).
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.config import DEFAULT_BATCH_ROWS

if TYPE_CHECKING:
    from torch import Tensor

    from engine.denoiser import Denoiser


@dataclass
class _Request:
    input_ids: Tensor
    attention_mask: Tensor
    positions: Tensor
    logits: Tensor | None = None
    error: BaseException | None = None
    finished: bool = False

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]


class StepBatcher:
    """A `Denoiser` that runs concurrent `logits` calls as shared passes of `denoiser`.

    Every other attribute (tokenizer, ids, family, `context_cache`, `block_size`, ...) is the
    wrapped denoiser's. `passes` and `requests` count what has been served, for benchmarks.
    `peer_wait`: the longest wait for the last pass's callers, in multiples of its duration
    (0: never wait)."""

    def __init__(
        self, denoiser: Denoiser, max_rows: int = DEFAULT_BATCH_ROWS, peer_wait: float = 1.0
    ):
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._inner = denoiser
        self.max_rows = max_rows
        self.peer_wait = peer_wait
        self.passes = 0
        self.requests = 0
        self._waiting: list[_Request] = []  # arrival order
        self._running = False  # a pass is in progress, on some caller's thread
        self._last_served = 0  # requests in the last pass
        self._returned = 0  # requests arrived since the last pass ended
        self._deadline = 0.0  # when to stop waiting for the last pass's callers (monotonic)
        self._changed = threading.Condition()

    @property
    def inner(self) -> Denoiser:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never forward our own state (copy, pickle, half-built)
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def waiting(self) -> int:
        """Requests queued for the next pass."""
        with self._changed:
            return len(self._waiting)

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        """As `Denoiser.logits`; blocks until a pass has served this call (raising its error)."""
        request = _Request(input_ids, attention_mask, positions)
        with self._changed:
            self._waiting.append(request)
            self._returned += 1
            self._changed.notify_all()
        while True:
            with self._changed:
                while not request.finished and not self._may_start():
                    self._changed.wait(None if self._running else self._deadline - time.monotonic())
                if request.finished:
                    break
                batch = self._take()
                self._running = True
            try:
                self._serve(batch)
            finally:
                with self._changed:
                    self._running = False
                    self._changed.notify_all()
        if request.error is not None:
            _reraise(request.error)
        assert request.logits is not None
        return request.logits

    def _may_start(self) -> bool:
        """Whether the next pass may start now (see "Waiting for the last pass's callers");
        called with the lock held."""
        if self._running:
            return False
        return (
            self._returned >= self._last_served
            or sum(request.rows for request in self._waiting) >= self.max_rows
            or time.monotonic() >= self._deadline
        )

    def _take(self) -> list[_Request]:
        """The next pass: queued requests in arrival order while their rows fit `max_rows`
        (always at least the first). Called with the lock held."""
        waiting = self._waiting
        taken, rows = 1, waiting[0].rows
        while taken < len(waiting) and rows + waiting[taken].rows <= self.max_rows:
            rows += waiting[taken].rows
            taken += 1
        batch, waiting[:taken] = waiting[:taken], []
        return batch

    def _serve(self, batch: list[_Request]) -> None:
        """Run one pass for `batch` and hand each request its logits, or the pass's error.
        Never raises: the error belongs to every caller in the batch."""
        started = time.monotonic()
        try:
            logits = self._inner.logits(*_stack(batch, self._inner.pad_token_id))
            counts = [int(request.positions.sum()) for request in batch]
            pieces = logits.split(counts) if len(batch) > 1 else (logits,)
            for request, piece in zip(batch, pieces, strict=True):
                request.logits = piece
        except BaseException as error:  # re-raised in every caller's thread
            for request in batch:
                request.error = error
        ended = time.monotonic()
        with self._changed:
            self.passes += 1
            self.requests += len(batch)
            self._last_served, self._returned = len(batch), 0
            self._deadline = ended + self.peer_wait * (ended - started)
            for request in batch:
                request.finished = True


def _stack(batch: list[_Request], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """The requests' rows, right-padded to the widest as `pack_batch` pads (the pad id,
    attention 0, no position requested) and stacked in batch order."""
    if len(batch) == 1:
        only = batch[0]
        return only.input_ids, only.attention_mask, only.positions
    width = max(request.input_ids.shape[1] for request in batch)

    def stacked(name: str, fill: int | bool) -> Tensor:
        parts: list[Tensor] = [getattr(request, name) for request in batch]
        rows = sum(part.shape[0] for part in parts)
        out = parts[0].new_full((rows, width), fill)
        row = 0
        for part in parts:
            out[row : row + part.shape[0], : part.shape[1]] = part
            row += part.shape[0]
        return out

    return stacked("input_ids", pad_id), stacked("attention_mask", 0), stacked("positions", False)


def _reraise(error: BaseException) -> None:
    """Raise the pass's error in one caller's thread: as a copy (same type and message) when it
    can be rebuilt, so that callers raising at once do not grow one shared traceback; the pass's
    own traceback is then its `__cause__`."""
    try:
        mine = copy.copy(error)
    except Exception:  # a type that cannot be rebuilt from its args
        mine = None
    if mine is None:
        raise error
    raise mine from error
