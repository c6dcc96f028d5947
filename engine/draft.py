"""The state of a draft: its instruction, settings and blocks, and the block-level operations.

A `Draft` is plain state (no model, no I/O), so it can be persisted, reloaded in a new process and
compared. A block's text and the mapping from its characters to canvas positions come from the
denoiser's tokenizer; the operations here (pin, unpin, edit) never touch a PINNED position's
token, which is what the invariants of DESIGN section 2 require.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from engine.config import DEFAULT_MODEL
from engine.errors import DraftError
from engine.families import RECIPE_FIELDS, Recipe, fast_cpu
from engine.provenance import Citations, ReadRound
from engine.sampler import Canvas, SamplerSettings, State, pin, unpin
from engine.search_hit import SearchHit

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MASK_GLYPH = "▒"
END_MARKERS = ("[/Answer]",)  # BERT-chat's end of turn: text, several tokens, not one id
# matched ignoring case and spaces: an uncased WordPiece tokenizer decodes it as "[ / answer ]"
_END_MARKER = re.compile(
    "|".join(r"\s*".join(map(re.escape, marker)) for marker in END_MARKERS), re.IGNORECASE
)


MAX_INSTRUCTION_CHARS = 4000  # about 1,000 tokens: a quarter of a small model's context
MAX_SECTIONS = 64  # every section is a batch row of every step
MAX_HEADING_CHARS = 300


@dataclass(frozen=True)
class SettingRange:
    low: float
    high: float
    step: float  # the increment a control offers

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


# What each numeric setting may be: the one place the checks below and the UI's controls read.
SETTING_RANGES = {
    "steps": SettingRange(1, 1024, 1),
    "block_tokens": SettingRange(1, 2048, 1),
    "passages": SettingRange(0, 32, 1),
    "refresh_every": SettingRange(0, 64, 1),
    "temperature": SettingRange(0.0, 2.0, 0.05),
    "threshold": SettingRange(0.5, 1.0, 0.01),
}


@dataclass
class DraftSettings:
    """What a draft runs with, recorded with it so resuming runs the same.

    The sampling fields start from the model family's published recipe (`Recipe.apply`, see
    engine/families.py); any of them can be overridden. The defaults here are BERT-chat's.
    """

    model: str = DEFAULT_MODEL
    steps: int = 64  # denoising steps per block run (the recipe: one token per step)
    block_tokens: int = 64  # canvas length of a new block: the most a section can hold
    passages: int = 3  # evidence passages per block
    refresh_every: int = 4  # re-run retrieval from the block's text every R steps (0: never);
    # with the context cache, at each new sub-block instead (a new prompt costs a full pass)
    temperature: float = 0.0
    order: str = "low_confidence"
    threshold: float | None = None  # None: the schedule; else commit by confidence >= tau
    context_chars: int = 200  # how much of the neighbouring blocks each block sees
    sub_block: int = 32  # tokens decoded in parallel, left to right between them; 0: all
    top_p: float | None = None
    top_k: int | None = None
    schedule: str = "linear"  # LLaDA's linear schedule, or Dream's "eps"
    score_sampled: bool = False  # score by the tempered, filtered distribution (Dream)
    min_tokens: int = 0  # a section never ends before this many tokens
    ends_last: bool = False  # end tokens commit after every other proposal
    cfg: float = 0.0  # classifier-free guidance scale (LLaDA's cfg_scale; 0: none)
    # Speed settings, opt-in until shown not to change the draft (README, Performance):
    context_cache: bool = False  # Fast-dLLM's prefix cache, refreshed at each sub-block start
    int8: bool = False  # dynamic int8 linear layers (CPU only; ignored on a GPU)

    def __post_init__(self) -> None:
        for name in ("steps", "block_tokens", "passages", "refresh_every"):
            limits = SETTING_RANGES[name]
            if not limits.holds(getattr(self, name)):
                raise DraftError(
                    f"{name.replace('_', ' ')} must be {limits.low:g}-{limits.high:g}, "
                    f"not {getattr(self, name)}"
                )
        if self.cfg < 0 or (self.cfg > 0 and self.context_cache):
            raise DraftError("guidance must be >= 0, and runs without the context cache")
        self.sampler()  # validates the sampling fields

    def sampler(self) -> SamplerSettings:
        try:
            return SamplerSettings(
                temperature=self.temperature,
                order=self.order,
                threshold=self.threshold,
                top_p=self.top_p,
                top_k=self.top_k,
                schedule=self.schedule,
                sub_block=self.sub_block,
                score_sampled=self.score_sampled,
                min_tokens=self.min_tokens,
                ends_last=self.ends_last,
            )
        except ValueError as error:
            raise DraftError(str(error)) from error

    @classmethod
    def from_recipe(cls, recipe: Recipe, fast: bool = False, **overrides) -> DraftSettings:
        """Settings that start from a family's published recipe (the "fast on CPU" preset on
        top of it when `fast`: Fast-dLLM's threshold and int8), then take every override that
        is not None. Steps follow the recipe's tokens per step unless given."""
        given = {name: value for name, value in overrides.items() if value is not None}
        if fast:
            recipe = fast_cpu(recipe)
            given.setdefault("int8", True)
        base = cls(**{k: v for k, v in given.items() if k not in RECIPE_FIELDS})
        return replace(recipe.apply(base), **{k: v for k, v in given.items() if k in RECIPE_FIELDS})

    def steps_per_window(self) -> int:
        """The step budget of one sub-block: the run's steps shared evenly (rounded up, as
        dllm does; LLaDA requires them to divide exactly)."""
        return max(1, math.ceil(self.steps / self.windows()))

    def windows(self) -> int:
        if self.sub_block <= 0:
            return 1
        return max(1, math.ceil(self.block_tokens / self.sub_block))


@dataclass
class Block:
    heading: str
    canvas: Canvas
    targets: list[str] = field(default_factory=list)  # doc ids retrieval is limited to
    evidence: list[SearchHit] = field(default_factory=list)
    prompt: list[int] | None = None  # token ids the block is conditioned on this round
    step: int = 0  # steps done in the block's current run
    steps_total: int = 16  # step budget of the current run
    window_start: int = -1  # the sub-block being decoded (its first position); -1: none yet
    window_step: int = 0  # steps done in that sub-block
    cache_epoch: int = -1  # draft step its context-cache epoch began at; -1: none (a full pass)
    read: list[ReadRound] = field(default_factory=list)  # the evidence of every round so far
    citations: Citations | None = None  # what supports its text, stored when the text changed
    redline: str | None = None  # its text before the last re-run, retarget or edit: the base
    # of the tracked change shown until the user accepts (or rejects) it

    @property
    def done(self) -> bool:
        return self.canvas.finished


@dataclass
class Draft:
    instruction: str
    blocks: list[Block]
    settings: DraftSettings
    seed: int
    draft_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    title: str = ""
    step: int = 0  # forward passes run on this draft, all runs together
    rng_state: bytes | None = None  # the sampler generator's state after the last step
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def done(self) -> bool:
        return all(block.done for block in self.blocks)


def check_sizes(instruction: str, headings: list[str]) -> None:
    """Refuse, before any tokenizing or model work, what no model context could hold."""
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise DraftError(
            f"the instruction has {len(instruction):,} characters; at most "
            f"{MAX_INSTRUCTION_CHARS:,} fit beside the sources: shorten it, and put long "
            "material in the library as a PDF instead"
        )
    if len(headings) > MAX_SECTIONS:
        raise DraftError(
            f"{len(headings)} sections is more than {MAX_SECTIONS} per draft: split the "
            "document into several drafts"
        )
    longest = max(headings, key=len)
    if len(longest) > MAX_HEADING_CHARS:
        raise DraftError(
            f"the section heading {longest[:40]!r}… has {len(longest):,} characters; a heading "
            f"has at most {MAX_HEADING_CHARS}"
        )


def new_draft(
    instruction: str,
    headings: list[str],
    settings: DraftSettings,
    seed: int,
    mask_id: int,
    end_ids: tuple[int, ...] = (),
    title: str | None = None,
    targets: list[str] | None = None,
) -> Draft:
    """A draft whose sections are all masked; `targets` limits every section's retrieval to
    those documents ("follow this document")."""
    instruction = instruction.strip()
    headings = [h.strip() for h in headings if h.strip()]
    if not instruction:
        raise DraftError("write an instruction: what should the draft say?")
    if not headings:
        raise DraftError("add at least one section heading")
    check_sizes(instruction, headings)
    blocks = [
        Block(
            h,
            Canvas.empty(settings.block_tokens, mask_id, end_ids),
            targets=list(targets or []),
            steps_total=run_steps(settings),
        )
        for h in headings
    ]
    return Draft(instruction, blocks, settings, seed, title=title or instruction[:80])


def cut_at_end_marker(text: str) -> str:
    """The text before the first end-of-turn marker, trailing space dropped."""
    match = _END_MARKER.search(text)
    return (text[: match.start()] if match else text).rstrip()


def run_steps(settings: DraftSettings) -> int:
    """The step budget of one run of a block: every sub-block's."""
    return settings.steps_per_window() * settings.windows()


# -- text and positions ------------------------------------------------------------------------


def _shown_ids(
    tokenizer: PreTrainedTokenizerBase, canvas: Canvas, show_masks: bool
) -> tuple[list[int], list[int]]:
    """The token ids the text shows (the mask token for a shown mask), and their positions:
    those before the section's end token."""
    special = set(tokenizer.all_special_ids)
    kept: list[int] = []
    owners: list[int] = []
    end = canvas.end
    for position, (token, masked) in enumerate(
        zip(canvas.tokens[:end].tolist(), canvas.masked[:end].tolist(), strict=True)
    ):
        if (masked and show_masks) or (not masked and token not in special):
            kept.append(canvas.mask_id if masked else token)
            owners.append(position)
    return kept, owners


def _decoded(tokenizer: PreTrainedTokenizerBase, ids: list[int], mask_id: int) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=False)
    prefix = _subword_prefix(tokenizer)
    if prefix and text.startswith(prefix) and tokenizer.convert_ids_to_tokens(ids[0]) != prefix:
        text = text[len(prefix) :]  # a section never starts mid-word: "##nsor" reads "nsor"
    return text.replace(tokenizer.convert_ids_to_tokens(mask_id), MASK_GLYPH)


def _subword_prefix(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """WordPiece's continuation prefix ("##"), which its decoder keeps on a leading piece."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    if type(model).__name__ != "WordPiece":
        return None
    return model.continuing_subword_prefix


def text_and_spans(
    tokenizer: PreTrainedTokenizerBase, canvas: Canvas, show_masks: bool = True
) -> tuple[str, list[tuple[int, int] | None]]:
    """A block's text, and for every canvas position the characters it occupies (None when it
    shows nothing: special tokens, trimmed end markers, hidden masks).

    Decoding prefix by prefix keeps the tokenizer's own spacing and word-piece joining, so the
    spans are exactly what the user sees and selects.
    """
    kept, owners = _shown_ids(tokenizer, canvas, show_masks)
    spans: list[tuple[int, int] | None] = [None] * len(canvas)
    text = ""
    for count, position in enumerate(owners, start=1):
        decoded = _decoded(tokenizer, kept[:count], canvas.mask_id)
        start = len(text.rstrip()) if decoded.startswith(text.rstrip()) else len(text)
        start = min(start, len(decoded))
        while start < len(decoded) and decoded[start] == " ":
            start += 1
        spans[position] = (start, len(decoded)) if len(decoded) > start else None
        text = decoded
    trimmed = cut_at_end_marker(text)
    spans = [s if s is not None and s[1] <= len(trimmed) else None for s in spans]
    return trimmed, spans


def canvas_text(tokenizer: PreTrainedTokenizerBase, canvas: Canvas, *, show_masks: bool) -> str:
    """The text of `text_and_spans` in one decode (the last prefix is the whole)."""
    kept, _ = _shown_ids(tokenizer, canvas, show_masks)
    return cut_at_end_marker(_decoded(tokenizer, kept, canvas.mask_id))


def block_text(tokenizer: PreTrainedTokenizerBase, block: Block, show_masks: bool = False) -> str:
    return canvas_text(tokenizer, block.canvas, show_masks=show_masks)


def positions_in(spans: list[tuple[int, int] | None], start: int, end: int) -> list[int]:
    """Canvas positions whose characters overlap the selection [start, end)."""
    return [i for i, s in enumerate(spans) if s is not None and s[0] < end and s[1] > start]


def pinned_spans(tokenizer: PreTrainedTokenizerBase, block: Block) -> list[tuple[int, int, str]]:
    """(start, end, text) of each run of pinned positions, in the block's text (masks shown)."""
    if not block.canvas.pinned.any():
        return []
    text, spans = text_and_spans(tokenizer, block.canvas)
    runs: list[list[int]] = []
    previous = None
    for position in block.canvas.pinned.nonzero().squeeze(1).tolist():
        if spans[position] is None:
            continue
        if previous is not None and position == previous + 1:
            runs[-1][1] = spans[position][1]
        else:
            runs.append([spans[position][0], spans[position][1]])
        previous = position
    return [(start, end, text[start:end]) for start, end in runs]


# -- operations on one block ---------------------------------------------------------------------


def keep_change_base(block: Block, before: str) -> None:
    """Keep `before` as the base of the block's tracked change (`Block.redline`), unless one is
    pending already: changes pile up on the last accepted text, as in a word processor."""
    if block.redline is None and before.strip():
        block.redline = before


def pin_selection(tokenizer: PreTrainedTokenizerBase, block: Block, start: int, end: int) -> None:
    """Pin the whole tokens covering characters [start, end) of the block's text (masks shown).

    Masked positions inside the selection stay masked: only text that exists can be pinned.
    """
    text, spans = text_and_spans(tokenizer, block.canvas)
    if not 0 <= start < end <= len(text):
        raise DraftError(f"the selection {start}-{end} is outside the block's text")
    positions = [p for p in positions_in(spans, start, end) if not block.canvas.masked[p]]
    if not positions:
        raise DraftError("the selection holds no written text to pin yet")
    block.canvas = pin(block.canvas, positions)


def unpin_selection(tokenizer: PreTrainedTokenizerBase, block: Block, start: int, end: int) -> None:
    _, spans = text_and_spans(tokenizer, block.canvas)
    block.canvas = unpin(block.canvas, positions_in(spans, start, end))


def edit_text(
    tokenizer: PreTrainedTokenizerBase, block: Block, new_text: str, lock: bool = False
) -> None:
    """Replace the block's text with the user's; pinned passages must survive and stay pinned.

    The canvas length follows the text. With `lock`, the user's whole text becomes pinned.
    """
    kept = [span_text for _, _, span_text in pinned_spans(tokenizer, block)]
    tokens = tokenizer(new_text, add_special_tokens=False)["input_ids"]
    if not tokens:
        raise DraftError("a block cannot be empty; re-run it to draft it again")
    state = State.PINNED if lock else State.COMMITTED
    edited = Canvas.from_tokens(
        tokens, block.canvas.mask_id, state=state, end_ids=block.canvas.end_ids
    )
    decoded = canvas_text(tokenizer, edited, show_masks=True)  # as the tokenizer will show it
    missing = [span_text for span_text in kept if span_text not in decoded]
    if missing:
        raise DraftError(f"the edit removes pinned text “{missing[0]}”; unpin it first")
    block.canvas = edited
    cursor = 0
    for span_text in kept:
        start = decoded.index(span_text, cursor)
        pin_selection(tokenizer, block, start, start + len(span_text))
        cursor = start + len(span_text)
    block.step = block.steps_total
