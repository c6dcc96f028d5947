"""Running a draft: rounds of retrieval and batched denoising steps, and the block operations
that re-noise (re-run, retarget) before denoising resumes.

`Drafter.run` yields a `StepEvent` after every step, once the step is persisted, so the UI and the
CLI stream the same thing and a killed process loses at most the step in flight. All randomness
goes through one `torch.Generator` whose state is saved with the draft: resuming in a new process
continues the exact same stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from engine.context_cache import PrefixCaches
from engine.denoiser import Denoiser, forbidden_token_ids
from engine.draft import (
    Block,
    Draft,
    DraftError,
    DraftSettings,
    keep_change_base,
    new_draft,
    run_steps,
)
from engine.draft_editor import BlockView, DraftEditor
from engine.draft_store import DraftStore
from engine.library import Library
from engine.prompting import prompt_ids
from engine.provenance import with_round
from engine.sampler import pack_batch, renoise, step, window


@dataclass(frozen=True)
class StepEvent:
    draft_id: str
    step: int  # the draft's step counter after this step
    stepped: list[int]  # blocks advanced by this step
    blocks: list[BlockView]
    done: bool


def section_query(instruction: str, heading: str, text: str) -> str:
    """What a section's evidence is searched with: its heading and its text so far.

    The draft's instruction is left out when the section has a heading: it is the same for every
    section and mostly about form ("a memo to the partner, with citations"), and added to the
    heading it cost a tenth of the answering passages found in the top 5 (bench/drafting_queries.py,
    README "Passage retrieval"); a second query with it, fused, did no better than the heading.
    """
    subject = heading if heading.strip() else instruction
    return " ".join(part for part in (subject.strip(), text.strip()) if part)


class Drafter(DraftEditor):
    """Drafts with one denoiser over one library, saving every step to a `DraftStore`."""

    def __init__(self, library: Library, denoiser: Denoiser, store: DraftStore):
        super().__init__(library, denoiser.tokenizer, store)
        self.denoiser = denoiser
        self.forbidden = forbidden_token_ids(
            self.tokenizer, denoiser.vocab_size, denoiser.mask_token_id, denoiser.end_ids
        )
        self.context_cache = getattr(denoiser, "context_cache", None)
        self.pad_id = denoiser.pad_token_id
        self.aligned = getattr(denoiser, "block_size", None) is not None  # block-causal

    # -- creating and viewing ------------------------------------------------------------------

    def start(
        self,
        instruction: str,
        headings: list[str],
        settings: DraftSettings,
        seed: int = 0,
        follow: list[str] | None = None,
    ) -> Draft:
        """A new draft, saved; `follow` limits every section's retrieval to those documents."""
        self._check_documents(follow or [])
        if settings.block_tokens >= self.denoiser.max_length // 2:
            raise DraftError(
                f"blocks of {settings.block_tokens} tokens leave too little room for sources in "
                f"this model's {self.denoiser.max_length}-token context"
            )
        # the draft records the precision that really runs, so resuming it reloads the same
        settings = replace(settings, int8=getattr(self.denoiser, "int8", False))
        draft = new_draft(
            instruction,
            headings,
            settings,
            seed,
            self.denoiser.mask_token_id,
            self.denoiser.end_ids,
            targets=follow,
        )
        budget = self.denoiser.max_length - settings.block_tokens
        for block in draft.blocks:  # each prompt must fit, even with no sources
            prompt_ids(self.tokenizer, budget, draft.instruction, block.heading, [])
        draft.rng_state = torch.Generator().manual_seed(seed).get_state().numpy().tobytes()
        self.save(draft)
        return draft

    # -- the loop --------------------------------------------------------------------------------

    def run(
        self,
        draft: Draft,
        only: list[int] | None = None,
        stop_after: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[StepEvent]:
        """Denoise the unfinished blocks (or `only` these) until done, `stop_after` steps, or
        `should_stop()` is true between steps (pause)."""
        generator = _generator(draft)
        steps_run = 0
        caches = None  # Fast-dLLM's prefix cache, rebuilt from the draft when a run starts
        if draft.settings.context_cache and self.context_cache is not None:
            caches = PrefixCaches(self.context_cache)
        while True:
            active = [
                i
                for i, block in enumerate(draft.blocks)
                if not block.done and (only is None or i in only)
            ]
            if not active or (stop_after is not None and steps_run >= stop_after) or should_stop():
                return
            stale = [i for i in active if self._refresh_due(draft, draft.blocks[i], caches)]
            self.refresh_evidence(draft, stale)
            for i in stale:
                prompt = self._prompt(draft, i)
                if prompt != draft.blocks[i].prompt:
                    draft.blocks[i].cache_epoch = -1  # a new prompt starts a new cache epoch
                draft.blocks[i].prompt = prompt
            self._step(draft, active, generator, caches)
            steps_run += 1
            for i in active:
                if draft.blocks[i].done:
                    self.cite(draft, i)
            self.save(draft)
            yield StepEvent(
                draft.draft_id,
                draft.step,
                active,
                [self.view(draft, i) for i in range(len(draft.blocks))],
                draft.done,
            )

    def _step(
        self,
        draft: Draft,
        active: list[int],
        generator: torch.Generator,
        caches: PrefixCaches | None,
    ) -> None:
        blocks = [draft.blocks[i] for i in active]
        canvases = [block.canvas for block in blocks]
        sampler = draft.settings.sampler()
        origins = [self._origin(block) for block in blocks]
        for block, origin in zip(blocks, origins, strict=True):  # a new sub-block: a new budget
            start, _ = window(block.canvas, sampler.sub_block, origin)
            if start != block.window_start:
                block.window_start, block.window_step = start, 0
        if caches is None:
            logits = self._logits([b.prompt for b in blocks], canvases, draft.settings)
        else:
            logits = caches.logits(active, blocks, draft.step, sampler.sub_block)
        per_window = draft.settings.steps_per_window()
        stepped = step(
            canvases,
            logits,
            steps_left=[max(per_window - b.window_step, 1) for b in blocks],
            steps_total=[per_window] * len(blocks),
            step_index=[draft.step + 1] * len(blocks),
            settings=sampler,
            forbidden=self.forbidden,
            generator=generator,
            origins=origins,
        )
        for block, canvas in zip(blocks, stepped, strict=True):
            block.canvas = canvas
            block.step += 1
            block.window_step += 1
        draft.step += 1
        draft.rng_state = generator.get_state().numpy().tobytes()

    def _logits(self, prompts: list[list[int]], canvases: list, settings: DraftSettings):
        """One batched forward pass at the candidate positions. With guidance (`cfg` > 0, LLaDA's
        unsupervised classifier-free guidance), each row also runs with its prompt masked, in
        the same pass, and the logits become uncond + (cfg + 1) * (cond - uncond)."""
        if settings.cfg > 0:
            unconditional = [[self.denoiser.mask_token_id] * len(p) for p in prompts]
            prompts, canvases = prompts + unconditional, canvases + canvases
        input_ids, attention_mask, positions = pack_batch(
            prompts, canvases, self.pad_id, settings.sub_block, self.aligned
        )
        logits = self.denoiser.logits(input_ids, attention_mask, positions)
        if settings.cfg > 0:
            conditional, unconditional = logits.chunk(2)
            logits = unconditional + (settings.cfg + 1) * (conditional - unconditional)
        return logits

    def _refresh_due(self, draft: Draft, block: Block, caches: PrefixCaches | None) -> bool:
        """Whether the block's retrieval (and so its prompt) is refreshed before this step:
        every `refresh_every` steps; with the prefix cache, when a new sub-block starts instead,
        since a new prompt costs a full pass and the cache's rule is one per sub-block."""
        every = draft.settings.refresh_every
        if block.prompt is None:
            return True
        if not every or block.step == 0:
            return False
        if caches is not None:
            start, _ = window(block.canvas, draft.settings.sub_block, self._origin(block))
            return start != block.window_start
        return block.step % every == 0

    def _origin(self, block: Block) -> int:
        """Where the block's sub-blocks are counted from: its prompt's first token for a
        block-causal model (its blocks start there), else the canvas start."""
        return len(block.prompt) if self.aligned else 0

    def _prompt(self, draft: Draft, index: int) -> list[int]:
        block = draft.blocks[index]
        budget = self.denoiser.max_length - len(block.canvas)
        chars = draft.settings.context_chars
        before = self.text(draft, index - 1)[-chars:] if index > 0 else ""
        after = self.text(draft, index + 1)[:chars] if index + 1 < len(draft.blocks) else ""
        return prompt_ids(
            self.tokenizer, budget, draft.instruction, block.heading, block.evidence, before, after
        )

    def refresh_evidence(self, draft: Draft, indices: list[int]) -> None:
        """Retrieve each block's evidence with its `section_query` (one search call for all of
        them, so their queries are embedded together)."""
        if not indices:
            return
        blocks = [draft.blocks[i] for i in indices]
        queries = [
            section_query(draft.instruction, block.heading, self.text(draft, i))
            for i, block in zip(indices, blocks, strict=True)
        ]
        found = self.library.search_many(
            queries, k=draft.settings.passages, doc_ids=[block.targets or None for block in blocks]
        )
        for block, evidence in zip(blocks, found, strict=True):
            block.evidence = evidence
            block.read = with_round(block.read, draft.step, evidence)

    # -- operations that re-noise one block ------------------------------------------------------

    def rerun(self, draft: Draft, index: int, strength: float = 1.0) -> None:
        """Re-mask `strength` of the block's unpinned positions; `run(only=[index])` redrafts it."""
        block = block_of(draft, index)
        if block.done:
            keep_change_base(block, self.text(draft, index))
        generator = _generator(draft)
        block.canvas = renoise(block.canvas, strength, generator)
        block.step, block.steps_total = 0, run_steps(draft.settings)
        block.window_start, block.window_step = -1, 0
        block.prompt = None  # the next run retrieves again and rebuilds the prompt
        draft.rng_state = generator.get_state().numpy().tobytes()
        self.refresh_evidence(draft, [index])
        self.save(draft)

    def retarget(self, draft: Draft, index: int, doc_ids: list[str], strength: float = 1.0) -> None:
        """Limit the block's retrieval to `doc_ids` (none: the whole library) and re-run it."""
        self._check_documents(doc_ids)
        block_of(draft, index).targets = list(doc_ids)
        self.rerun(draft, index, strength)

    def _check_documents(self, doc_ids: list[str]) -> None:
        unknown = [d for d in doc_ids if self.library.document(d) is None]
        if unknown:
            raise DraftError(f"no document {unknown[0][:12]} in the library")


def _generator(draft: Draft) -> torch.Generator:
    generator = torch.Generator()
    if draft.rng_state is None:
        return generator.manual_seed(draft.seed)
    return generator.set_state(torch.frombuffer(bytearray(draft.rng_state), dtype=torch.uint8))


def block_of(draft: Draft, index: int) -> Block:
    if not 0 <= index < len(draft.blocks):
        raise DraftError(f"the draft has no block {index + 1}")
    return draft.blocks[index]
