"""Absorbing-state (masked) diffusion sampler: canvases, proposals, commit rules, re-noising.

Pure tensor code, no I/O, in the spirit of LLaDA's `generate.py`. One draft block is one `Canvas`;
a step takes the logits a denoiser produced at the `active` positions of several canvases (one
batched forward pass, ragged lengths allowed) and returns new canvases:

    input_ids, attention_mask, positions = pack_batch(prompts, canvases, pad_id, sub_block)
    logits = denoiser.logits(input_ids, attention_mask, positions)
    canvases = step(canvases, logits, steps_left=..., steps_total=..., step_index=...,
                    settings=settings, generator=generator)

A canvas is decoded as the references decode an answer: in sub-blocks (`window`), left to right
between them and in parallel inside one. Inside `step`: `propose` what each candidate would become
(argmax, or sampled after top-p / top-k), score the proposals by the chosen order, and commit the
best `k` per canvas (LLaDA's linear schedule, Dream's eps schedule, or Fast-dLLM's confidence
threshold). A section ends at its first committed end token (`Canvas.end`); sub-blocks wholly past
it are never decoded.

What the references do and this sampler does too, token for token at temperature 0 (tests/
test_recipes.py replays their loops): LLaDA `generate.py` / dllm `MDLMSampler` with
`suppress_tokens` set to the forbidden ids; Fast-dLLM `get_transfer_index` with a threshold;
Dream `_sample` with a batch of one. Where it differs on purpose: sampling at T > 0 draws by
inverting the CDF with one uniform per row instead of Gumbel noise over the whole vocabulary
(the same distribution, another random stream); Dream counts masks per canvas, not averaged
over the batch; a section may not end before `min_tokens` or before a pinned span (LLaDA's
`logits_eos_inf` forbids EOS everywhere instead).

Invariants kept here (DESIGN section 2): a step writes only into MASKED positions; PINNED
positions never change; masks are only ever added by `refine` and `renoise`, and only on unpinned
positions; forbidden ids (special tokens, the mask) are never proposed.

Determinism: every random choice draws from an explicit `torch.Generator` passed in, and the work
runs on that generator's device. `generator.get_state()` returns a uint8 tensor that can be
persisted; `torch.Generator(device).set_state(saved)` resumes the exact same stream, so a draft
that is stopped after step N and resumed gives the same canvases as an uninterrupted run, as long
as the same blocks are stepped together in the same order (the batch composition decides how many
random numbers each step consumes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Literal, get_args

import torch
from torch import Tensor


class State(IntEnum):
    MASKED = 0
    COMMITTED = 1
    PINNED = 2


Order = Literal["low_confidence", "margin", "entropy", "random", "maskgit_plus"]
ORDERS: tuple[str, ...] = get_args(Order)


@dataclass(frozen=True, eq=False)
class Canvas:
    """One block: tokens and the per-position state. Functions return new canvases, never mutate.

    `tokens` holds `mask_id` at every MASKED position; `commit_step` is -1 and `confidence` 0 there.
    Text set by the user (edits, pins) carries confidence 1.

    `end_ids` are the tokens that end a section (EOS, end of turn, the padding BERT-chat fills an
    answer's tail with). The section's text stops at the first committed one: the canvas length
    is a maximum. Masks after it are closed: no text depends on them, so a canvas whose masks
    are all closed is `finished`.
    """

    tokens: Tensor  # [L] long
    state: Tensor  # [L] int8, values of State
    commit_step: Tensor  # [L] long
    confidence: Tensor  # [L] float32
    mask_id: int
    end_ids: tuple[int, ...] = ()

    @staticmethod
    def empty(length: int, mask_id: int, end_ids: Sequence[int] = ()) -> Canvas:
        """A fully masked canvas: the start of every block."""
        return Canvas(
            tokens=torch.full((length,), mask_id, dtype=torch.long),
            state=torch.full((length,), State.MASKED, dtype=torch.int8),
            commit_step=torch.full((length,), -1, dtype=torch.long),
            confidence=torch.zeros(length, dtype=torch.float32),
            mask_id=mask_id,
            end_ids=tuple(end_ids),
        )

    @staticmethod
    def from_tokens(
        tokens: Sequence[int] | Tensor,
        mask_id: int,
        state: State = State.COMMITTED,
        step: int = 0,
        end_ids: Sequence[int] = (),
    ) -> Canvas:
        """A canvas holding user text, committed (or pinned) at `step`; mask ids stay MASKED."""
        tokens = torch.as_tensor(tokens, dtype=torch.long).clone()
        masked = tokens == mask_id
        return Canvas(
            tokens=tokens,
            state=torch.full(tokens.shape, state, dtype=torch.int8).masked_fill(
                masked, State.MASKED
            ),
            commit_step=torch.full(tokens.shape, step, dtype=torch.long).masked_fill(masked, -1),
            confidence=torch.ones(tokens.shape, dtype=torch.float32).masked_fill(masked, 0.0),
            mask_id=mask_id,
            end_ids=tuple(end_ids),
        )

    def __len__(self) -> int:
        return self.tokens.numel()

    @property
    def masked(self) -> Tensor:
        return self.state == State.MASKED

    @property
    def pinned(self) -> Tensor:
        return self.state == State.PINNED

    @property
    def n_masked(self) -> int:
        return int(self.masked.sum())

    @property
    def end(self) -> int:
        """Where the section's text stops: its first committed end token, else the length."""
        if not self.end_ids:
            return len(self)
        ends = ~self.masked & torch.isin(self.tokens, torch.tensor(self.end_ids))
        return int(ends.nonzero()[0]) if ends.any() else len(self)

    @property
    def open(self) -> Tensor:
        """MASKED positions before the end: the ones the text still waits for."""
        return self.masked & (torch.arange(len(self)) < self.end)

    @property
    def n_open(self) -> int:
        return int(self.open.sum())

    @property
    def finished(self) -> bool:
        return self.n_open == 0

    def equals(self, other: Canvas) -> bool:
        """Exact equality of every field (canvases hold tensors, so `==` is not defined)."""
        return (
            self.mask_id == other.mask_id
            and self.end_ids == other.end_ids
            and torch.equal(self.tokens, other.tokens)
            and torch.equal(self.state, other.state)
            and torch.equal(self.commit_step, other.commit_step)
            and torch.equal(self.confidence, other.confidence)
        )


def window(canvas: Canvas, sub_block: int, origin: int = 0) -> tuple[int, int]:
    """[start, end) of the sub-block being decoded: the first (of `sub_block` tokens, counted
    from the canvas start, or from `origin` tokens before it) that holds an open mask.
    `sub_block` 0 is the whole canvas. Block-causal models count their blocks from the first
    token of the input, so for them `origin` is the prompt's length and the canvas's first
    sub-block may be shorter.

    This is LLaDA's semi-autoregressive decoding: left to right between sub-blocks, in parallel
    inside one. The references advance by loop index; taking the first sub-block with an open
    mask is the same on a fresh canvas and stays right when pins or edits fill a sub-block.
    """
    length = len(canvas)
    open_positions = canvas.open.nonzero()
    if open_positions.numel() == 0:
        return length, length
    if sub_block <= 0:
        return 0, length
    start = (int(open_positions[0]) + origin) // sub_block * sub_block - origin
    return max(start, 0), min(start + sub_block, length)


def active(canvas: Canvas, sub_block: int, origin: int = 0) -> Tensor:
    """[L] bool: the masks of the current sub-block, the positions a step may commit.

    Masks past an end token inside the sub-block stay candidates, as in the references (which
    never stop early), so the commits before the end are theirs exactly; only sub-blocks wholly
    past the end are skipped, and they cannot change the text."""
    start, stop = window(canvas, sub_block, origin)
    inside = torch.zeros(len(canvas), dtype=torch.bool)
    inside[start:stop] = True
    return canvas.masked & inside


def _as_index(positions: Tensor | Sequence[int]) -> Tensor:
    """Positions given as a bool mask [L] or as indices -> long indices."""
    positions = torch.as_tensor(positions)
    if positions.dtype == torch.bool:
        return positions.nonzero().squeeze(1)
    return positions.long().reshape(-1)


def pin(canvas: Canvas, positions: Tensor | Sequence[int]) -> Canvas:
    """Pin committed positions. A MASKED position cannot be pinned: it would stay a mask forever."""
    index = _as_index(positions)
    if canvas.masked[index].any():
        raise ValueError("cannot pin a masked position; commit or edit it first")
    return replace(canvas, state=canvas.state.index_fill(0, index, State.PINNED))


def unpin(canvas: Canvas, positions: Tensor | Sequence[int]) -> Canvas:
    """Pinned positions in `positions` become COMMITTED again; other positions are untouched."""
    index = _as_index(positions)
    index = index[canvas.pinned[index]]
    return replace(canvas, state=canvas.state.index_fill(0, index, State.COMMITTED))


def _mask_out(canvas: Canvas, index: Tensor) -> Canvas:
    """Re-mask `index`: the only way masks are added, and never on a PINNED position."""
    if canvas.pinned[index].any():
        raise ValueError("pinned positions are never re-masked")
    return replace(
        canvas,
        tokens=canvas.tokens.index_fill(0, index, canvas.mask_id),
        state=canvas.state.index_fill(0, index, State.MASKED),
        commit_step=canvas.commit_step.index_fill(0, index, -1),
        confidence=canvas.confidence.index_fill(0, index, 0.0),
    )


def _commit(canvas: Canvas, index: Tensor, tokens: Tensor, confidence: Tensor, at: int) -> Canvas:
    """Write proposals into MASKED positions only: the step invariant, checked, not assumed."""
    if not canvas.masked[index].all():
        raise ValueError("a step may only commit into MASKED positions")
    return replace(
        canvas,
        tokens=canvas.tokens.index_copy(0, index, tokens.to(canvas.tokens)),
        state=canvas.state.index_fill(0, index, State.COMMITTED),
        commit_step=canvas.commit_step.index_fill(0, index, at),
        confidence=canvas.confidence.index_copy(0, index, confidence.to(canvas.confidence)),
    )


def forbid(logits: Tensor, forbidden: Tensor | None) -> Tensor:
    """Logits with the forbidden token ids set to -inf, so they can never be proposed."""
    if forbidden is None or forbidden.numel() == 0:
        return logits
    return logits.index_fill(-1, forbidden.to(logits.device), float("-inf"))


def top_p_top_k(logits: Tensor, top_p: float | None, top_k: int | None) -> Tensor:
    """Nucleus and top-k filtering as Dream's sampler applies them (top-p first): ids outside
    the smallest set whose probability reaches `top_p`, or outside the `top_k` best, get -inf.
    The most likely id always stays."""
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        beyond = torch.softmax(ordered, dim=-1).cumsum(dim=-1) > top_p
        beyond[..., 1:] = beyond[..., :-1].clone()  # keep the id that crosses top_p
        beyond[..., 0] = False
        logits = logits.masked_fill(beyond.scatter(-1, order, beyond), float("-inf"))
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


@dataclass(frozen=True)
class Proposal:
    """What a step proposes at N candidate positions."""

    x0: Tensor  # [N] the proposed tokens
    confidence: Tensor  # [N] their probability under the model (untempered)
    model_log_probs: Tensor  # [N, V] the model's distribution, forbidden ids removed
    drawn_log_probs: Tensor  # [N, V] the tempered, filtered distribution x0 was drawn from


def propose(
    logits: Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    forbidden: Tensor | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
) -> Proposal:
    """Proposals for N masked positions: argmax at T=0, else a draw from softmax(logits / T)
    after top-p / top-k filtering.

    The confidence is the untempered probability of the proposal, as LLaDA's low-confidence
    remasking uses it; Dream scores by the distribution it drew from instead (`score_sampled`).
    """
    model = torch.log_softmax(forbid(logits, forbidden).float(), dim=-1)
    drawn = model
    if temperature > 0 or top_p is not None or top_k is not None:
        scaled = model / temperature if temperature > 0 else model
        drawn = torch.log_softmax(top_p_top_k(scaled, top_p, top_k), dim=-1)
    x0 = drawn.argmax(dim=-1) if temperature == 0 else sample(drawn, generator)
    confidence = model.gather(-1, x0.unsqueeze(-1)).squeeze(-1).exp()
    return Proposal(x0, confidence, model, drawn)


def sample(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row from softmax(logits), by inverting the CDF with one uniform per row.

    The CDF is summed in float64 (low-precision sampling hurts masked diffusion models,
    arXiv:2409.02908), yet this is about 4x faster than `torch.multinomial` over a 50k vocabulary
    on a CPU. Ids with zero probability (-inf logits) are never drawn: u * total is kept strictly
    below the total, and a right-sided search never lands on a flat stretch of the CDF.
    """
    weights = (logits - logits.max(dim=-1, keepdim=True).values).exp()
    cdf = weights.double().cumsum(dim=-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=cdf.device)
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).squeeze(-1)


def order_scores(
    order: Order,
    log_probs: Tensor,
    x0: Tensor,
    confidence: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """How sure the model is at each masked position [N]: higher commits first.

    `log_probs` [N, V] is the distribution the margin and entropy are read from (forbidden ids
    already removed): the model's own (LLaDA) or the one sampled from (Dream).
    """
    if order == "low_confidence":
        return confidence
    if order == "random":
        return torch.rand(x0.shape, generator=generator, device=x0.device)
    probs = log_probs.exp()
    if order == "maskgit_plus":  # Dream: the drawn token's probability where it was drawn
        return probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if order == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]
    if order == "entropy":
        return (probs * torch.log(probs + 1e-10)).sum(-1)  # negative entropy, Dream's epsilon
    raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")


def tokens_to_commit(n_masked: int, steps_left: int) -> int:
    """LLaDA's linear schedule, computed from where the canvas is now.

    ceil(n / steps_left) each step commits the same counts as spreading n over the steps with the
    remainder first, and stays right when pins, edits or re-noising change n mid-run. With one
    step left (or none) everything remaining is committed.
    """
    if steps_left <= 1:
        return n_masked
    return math.ceil(n_masked / steps_left)


def eps_tokens_to_commit(n_masked: int, steps_left: int, steps_total: int, eps: float) -> int:
    """Dream's schedule: time runs over linspace(1, eps, steps + 1); from t to s the expected
    share 1 - s/t of the masks is revealed, floored (so a step may commit nothing), and the last
    step reveals the rest."""
    if steps_left <= 1:
        return n_masked
    i = steps_total - steps_left
    t = 1 - i * (1 - eps) / steps_total
    s = 1 - (i + 1) * (1 - eps) / steps_total
    return int(n_masked * (1 - s / t))


def choose(scores: Tensor, confidence: Tensor, k: int | None, threshold: float | None) -> Tensor:
    """Indices into one canvas's candidate positions to commit this step.

    Schedule (`threshold` None): the `k` best by score. Threshold (Fast-dLLM): the best one plus
    every other whose confidence is >= threshold; the step budget does not bound it. Ties go to
    the earlier position (stable sort), so the choice is reproducible.
    """
    n = scores.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    ranked = torch.sort(scores, descending=True, stable=True).indices
    if threshold is None:
        if k is None:
            raise ValueError("the schedule needs a number of tokens to commit")
        return ranked[:k]
    over = confidence[ranked] >= threshold
    over[0] = True
    return ranked[over]


Schedule = Literal["linear", "eps"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)


@dataclass(frozen=True)
class SamplerSettings:
    temperature: float = 0.0
    order: Order = "low_confidence"
    threshold: float | None = None  # None: the schedule; else Fast-dLLM threshold tau
    top_p: float | None = None
    top_k: int | None = None
    schedule: Schedule = "linear"  # LLaDA's linear, or Dream's eps schedule
    eps: float = 1e-3  # the eps schedule's final time
    sub_block: int = 0  # tokens decoded in parallel, left to right between them; 0: whole canvas
    score_sampled: bool = False  # Dream: margin/entropy read from the tempered, filtered probs
    min_tokens: int = 0  # end tokens are never proposed before this position (logits_eos_inf)
    ends_last: bool = False  # end tokens commit after every other proposal (LLaDA's option)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; expected one of {ORDERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError("top-p must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top-k must be at least 1")
        if self.sub_block < 0 or self.min_tokens < 0:
            raise ValueError("sub-block length and minimum length must be >= 0")

    def to_commit(self, n: int, steps_left: int, steps_total: int) -> int:
        if self.schedule == "eps":
            return eps_tokens_to_commit(n, steps_left, steps_total, self.eps)
        return tokens_to_commit(n, steps_left)


def end_suppression(canvas: Canvas, rows: Tensor, settings: SamplerSettings) -> Tensor:
    """[N] bool over the candidate positions `rows`: where an end token may not be proposed.

    A section may not end before `min_tokens` (LLaDA's `logits_eos_inf`, bounded), nor before
    text the user pinned, which would otherwise fall outside the section."""
    pinned = canvas.pinned.nonzero()
    last_pin = int(pinned[-1]) if pinned.numel() else -1
    return (rows < settings.min_tokens) | (rows < last_pin)


def step(
    canvases: Sequence[Canvas],
    logits: Tensor,
    *,
    steps_left: Sequence[int],
    steps_total: Sequence[int] | None = None,
    step_index: Sequence[int],
    settings: SamplerSettings = SamplerSettings(),
    forbidden: Tensor | None = None,
    generator: torch.Generator | None = None,
    origins: Sequence[int] | None = None,
) -> list[Canvas]:
    """One denoising step for a batch of canvases.

    `logits` [N, V] are the rows for every `active` position (the masks of each canvas's
    current sub-block), canvas by canvas, positions ascending: exactly what `Denoiser.logits`
    returns for the `positions` mask `pack_batch` builds from the canvases in this order.
    `steps_left` (this step included) and `steps_total` count steps of the current sub-block and
    `step_index` is recorded as `commit_step`, per canvas, so blocks at different points of their
    runs step together. `origins` place each canvas's sub-blocks (see `window`).
    """
    origins = origins if origins is not None else [0] * len(canvases)
    candidates = [
        active(canvas, settings.sub_block, origin)
        for canvas, origin in zip(canvases, origins, strict=True)
    ]
    counts = [int(c.sum()) for c in candidates]
    if logits.shape[0] != sum(counts):
        raise ValueError(f"got {logits.shape[0]} logit rows for {sum(counts)} masked positions")
    device = generator.device if generator is not None else logits.device
    logits = logits.to(device).float()
    rows = [c.nonzero().squeeze(1) for c in candidates]
    ends = torch.tensor(sorted({e for c in canvases for e in c.end_ids}), dtype=torch.long)
    if ends.numel():
        suppressed = torch.cat(
            [end_suppression(c, r, settings) for c, r in zip(canvases, rows, strict=True)]
        ).to(device)
        blocked = torch.zeros_like(logits, dtype=torch.bool)
        blocked[suppressed.nonzero().squeeze(1)[:, None], ends.to(device)] = True
        logits = logits.masked_fill(blocked, float("-inf"))
    proposal = propose(
        logits, settings.temperature, generator, forbidden, settings.top_p, settings.top_k
    )
    x0, confidence = proposal.x0, proposal.confidence
    scored_from = proposal.drawn_log_probs if settings.score_sampled else proposal.model_log_probs
    scores = order_scores(settings.order, scored_from, x0, confidence, generator)
    if settings.ends_last and ends.numel():
        scores = scores.masked_fill(torch.isin(x0, ends.to(device)), float("-inf"))

    totals = steps_total if steps_total is not None else steps_left
    stepped = []
    for canvas, index, x0_b, conf_b, scores_b, left, total, at in zip(
        canvases,
        rows,
        x0.split(counts),
        confidence.split(counts),
        scores.split(counts),
        steps_left,
        totals,
        step_index,
        strict=True,
    ):
        k = settings.to_commit(len(index), left, total) if settings.threshold is None else None
        chosen = choose(scores_b, conf_b, k, settings.threshold).cpu()
        stepped.append(_commit(canvas, index[chosen], x0_b.cpu()[chosen], conf_b.cpu()[chosen], at))
    return stepped


def pack_batch(
    prompts: Sequence[Sequence[int]],
    canvases: Sequence[Canvas],
    pad_token_id: int,
    sub_block: int = 0,
    aligned: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """The one batched forward pass of a step: each row is a prompt followed by its canvas,
    right-padded. Returns `input_ids` and `attention_mask` [B, W], and `positions` [B, W], True at
    the canvases' `active` positions: the rows `Denoiser.logits` returns, in the order `step` reads.
    `aligned`: sub-blocks counted from each row's first token (block-causal models).
    """
    rows = [
        list(prompt) + canvas.tokens.tolist()
        for prompt, canvas in zip(prompts, canvases, strict=True)
    ]
    width = max(map(len, rows), default=0)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, (prompt, row, canvas) in enumerate(zip(prompts, rows, canvases, strict=True)):
        input_ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[b, : len(row)] = 1
        origin = len(prompt) if aligned else 0
        positions[b, len(prompt) : len(row)] = active(canvas, sub_block, origin)
    return input_ids, attention_mask, positions


def refine(canvas: Canvas, count: int) -> Canvas:
    """Explicit re-noise: re-mask the `count` least confident COMMITTED positions (never PINNED)."""
    committed = (canvas.state == State.COMMITTED).nonzero().squeeze(1)
    order = torch.sort(canvas.confidence[committed], stable=True).indices
    return _mask_out(canvas, committed[order[:count]])


def renoise(canvas: Canvas, strength: float, generator: torch.Generator | None = None) -> Canvas:
    """Re-mask a fraction `strength` of the unpinned positions, chosen uniformly at random.

    Used by re-run and retarget; strength 1.0 masks every unpinned position.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be in [0, 1]")
    unpinned = (~canvas.pinned).nonzero().squeeze(1)
    k = math.floor(strength * unpinned.numel() + 0.5)
    device = generator.device if generator is not None else "cpu"
    chosen = torch.randperm(unpinned.numel(), generator=generator, device=device)[:k].cpu()
    return _mask_out(canvas, unpinned[chosen])
