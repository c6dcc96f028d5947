"""Block-causal diffusion models behind the `Denoiser` protocol, with an exact KV cache.

Block-causal families (SDAR and Fast-dLLM v2 here; the dllm bd3lm models and LLaDA 2.0 work the
same way) attend causally between blocks of `block_size` tokens, counted from position 0 of the
whole input (prompt included), and bidirectionally inside one. The keys and values of a block
depend only on the blocks up to it, so once the sampler asks for positions in block b, every
block before b is final for that call, whatever the later canvas holds: its keys and values can
be kept and reused, and only the blocks that hold the requested positions are recomputed. The
logits are exactly those of a full block-causal pass over the row (up to float summation order).

`BlockCausalCache` keeps one cache row per input row of the last call, keyed by the token ids of
its prefix (a whole number of blocks). A new call matches each of its rows to the cached row
sharing the longest block-aligned prefix with it (edits, re-noise and retargets simply shorten
the match), computes the missing blocks plus the current ones in one batched `forward_block`,
and keeps the prefix up to the block of each row's first requested position. Rows not in the
last call are dropped. When the rows are the same as in the last call, in the same order (every
step inside a block), the cache is extended in place and nothing is copied. For a model with a
token shift (Fast-dLLM v2: the logit for position i comes from the hidden state at i - 1), the
final hidden state of each cached prefix is kept too, for the block's first position.

The authors' samplers (JetAstra/SDAR `generate.py`, the `generate` of Fast-dLLM v2's
`modeling.py`) do the same for one row: prefill the prompt's whole blocks, recompute the current
block each step against the cache, store a block once it has no mask. Where we differ: the cache
is found by content instead of being threaded through one generation loop, so a batch of
sections that step together, drop out, or are edited and resumed in another process all get
exact logits without a full recompute.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.architectures.block_causal_lm import BlockCausalLM, KVCache
from engine.architectures.fast_dllm_v2 import (
    is_fast_dllm_v2_config,
    load_fast_dllm_v2,
    load_fast_dllm_v2_tokenizer,
)
from engine.architectures.sdar import (
    is_sdar_config,
    load_sdar,
    load_sdar_tokenizer,
)
from engine.denoiser import (
    _attempt,
    _config_limit,
    _default_dtype,
    _FamilyIds,
    _read_config,
    load_error,
    pick_device,
)
from engine.families import FAST_DLLM_V2, SDAR, Family

BLOCK_CAUSAL_FAMILIES = (SDAR, FAST_DLLM_V2)
_LOADERS: tuple[tuple[Callable[[dict], bool], Callable[..., BlockCausalLM], Callable], ...] = (
    (is_sdar_config, load_sdar, load_sdar_tokenizer),
    (is_fast_dllm_v2_config, load_fast_dllm_v2, load_fast_dllm_v2_tokenizer),
)


def block_causal_loaders(name: str, config: dict) -> tuple[Callable[..., BlockCausalLM], Callable]:
    """The model and tokenizer loaders of a block-causal config (SDAR or Fast-dLLM v2)."""
    loaders = next((pair for matches, *pair in _LOADERS if matches(config)), None)
    if loaders is None or block_causal_family(config) is None:
        raise load_error(name, "its config.json is not SDAR or Fast-dLLM v2")
    return tuple(loaders)


def block_causal_family(config: dict) -> Family | None:
    """The block-causal family a parsed config.json belongs to, if any."""
    return next((f for f in BLOCK_CAUSAL_FAMILIES if f.matches(config)), None)


@dataclass(frozen=True)
class _RowPlan:
    """What one input row needs: the logits at `columns`, which lie in blocks from `start`
    (a block boundary, the length of the prefix to keep) up to `end` (exclusive)."""

    row: int
    columns: Tensor
    start: int
    end: int
    prefix: Tensor  # token ids [start], on the CPU


def _plan(
    input_ids: Tensor, attention_mask: Tensor, positions: Tensor, block: int
) -> list[_RowPlan]:
    plans = []
    for row in range(input_ids.shape[0]):
        columns = positions[row].nonzero().squeeze(1)
        if columns.numel() == 0:
            continue
        real = int(attention_mask[row].sum())
        if int(columns[-1]) >= real:
            raise ValueError(f"row {row} asks for logits at padding (it has {real} tokens)")
        start = int(columns[0]) // block * block
        end = min(real, (int(columns[-1]) // block + 1) * block)
        plans.append(_RowPlan(row, columns, start, end, input_ids[row, :start].clone()))
    return plans


def _common_blocks(cached: Tensor, wanted: Tensor, block: int) -> int:
    """Length of the longest common prefix of two id sequences, in whole blocks."""
    n = min(len(cached), len(wanted))
    differ = (cached[:n] != wanted[:n]).nonzero()
    same = n if differ.numel() == 0 else int(differ[0])
    return same // block * block


class BlockCausalCache:
    """Exact logits of a block-causal model, computing only the blocks a call asks about.

    `forwarded_tokens` counts the token positions run through the network (for tests and
    benchmarks: a step inside a cached block costs one block per row)."""

    def __init__(self, model: BlockCausalLM) -> None:
        self.model = model
        self.block_size = model.config.block_size
        self.shift = model.config.logit_shift
        self.cache: KVCache | None = None
        self.prefixes: list[Tensor] = []
        self.tails: list[Tensor | None] = []  # final hidden state at prefix end - 1 (shift 1)
        self.forwarded_tokens = 0
        self._turns = threading.Lock()

    def _match(self, plans: list[_RowPlan]) -> tuple[list[int], list[int]]:
        """Per plan, the cached row to reuse (-1: none) and how many of its positions."""
        rows, lengths = [], []
        for i, plan in enumerate(plans):
            scores = [_common_blocks(p, plan.prefix, self.block_size) for p in self.prefixes]
            best = max(range(len(scores)), key=lambda j: (scores[j], j == i), default=-1)
            length = scores[best] if best >= 0 else 0
            if self._needs_tail(plan) and not self._tail_covers(best, length, plan.start):
                length = min(length, plan.start - self.block_size)  # recompute the block before
            rows.append(best if length > 0 else -1)
            lengths.append(length)
        return rows, lengths

    def _needs_tail(self, plan: _RowPlan) -> bool:
        """The row's first logit reads the hidden state just before its first block."""
        return bool(self.shift) and plan.start > 0 and int(plan.columns[0]) == plan.start

    def _tail_covers(self, row: int, length: int, start: int) -> bool:
        return (
            row >= 0 and length == start == len(self.prefixes[row]) and self.tails[row] is not None
        )

    def _reuse(self, rows: list[int], lengths: list[int], width: int) -> KVCache:
        if self.cache is not None and rows == list(range(len(self.prefixes))):
            self.cache.lengths = torch.tensor(lengths, dtype=torch.long)
            return self.cache
        if self.cache is not None and any(r >= 0 for r in rows):
            return self.cache.gather(rows, lengths)
        return KVCache.empty(self.model.config, len(rows), width, self.model.lm_head.weight)

    def _states(
        self, plans: list[_RowPlan], hidden: Tensor, starts: list[int], tails: Tensor
    ) -> Tensor:
        """The hidden states the requested logits read: from this pass, or a kept tail."""
        width = hidden.shape[1]
        flat = torch.cat([hidden.reshape(-1, hidden.shape[-1]), tails])
        index = []
        for i, (plan, start) in enumerate(zip(plans, starts, strict=True)):
            read = (plan.columns - self.shift).clamp(min=0)
            index.append(
                torch.where(read >= start, i * width + read - start, len(flat) - len(plans) + i)
            )
        return flat[torch.cat(index).to(flat.device)]

    def _new_tails(
        self, plans: list[_RowPlan], hidden: Tensor, starts: list[int], rows: list[int]
    ) -> list[Tensor | None]:
        if not self.shift:
            return [None] * len(plans)
        tails: list[Tensor | None] = []
        for i, (plan, start, row) in enumerate(zip(plans, starts, rows, strict=True)):
            if plan.start == 0:
                tails.append(None)
            elif plan.start - 1 >= start:
                tails.append(hidden[i, plan.start - 1 - start].clone())
            else:  # the prefix was cached whole: keep its tail if it is this prefix's
                same = row >= 0 and len(self.prefixes[row]) == plan.start
                tails.append(self.tails[row] if same else None)
        return tails

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        """Logits [N, V] at the True entries of `positions` [B, L], row-major: those of the full
        block-causal pass over each right-padded row.

        Calls take turns: concurrent drafts share one denoiser, so one cache, from their own
        threads, and a call must never read the cache while another rewrites it (without this
        lock, two drafts got each other's keys and values: wrong logits, no error)."""
        with self._turns:
            return self._logits(input_ids, attention_mask, positions)

    def _logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        input_ids, attention_mask, positions = (
            t.cpu() for t in (input_ids, attention_mask, positions)
        )
        weight = self.model.lm_head.weight
        plans = _plan(input_ids, attention_mask, positions.bool(), self.block_size)
        if not plans:
            return weight.new_zeros((0, self.model.config.vocab_size))
        rows, starts = self._match(plans)
        cache = self._reuse(rows, starts, max(plan.end for plan in plans))
        widths = [plan.end - start for plan, start in zip(plans, starts, strict=True)]
        block = torch.zeros((len(plans), max(widths)), dtype=torch.long)
        for i, (plan, start, width) in enumerate(zip(plans, starts, widths, strict=True)):
            block[i, :width] = input_ids[plan.row, start : start + width]
        hidden, cache = self.model.forward_block(block.to(weight.device), cache, starts, widths)
        self.forwarded_tokens += sum(widths)
        kept = [self.tails[r] if r >= 0 and self.shift else None for r in rows]
        tails = torch.stack(
            [t if t is not None else hidden.new_zeros(hidden.shape[-1]) for t in kept]
        )
        states = self._states(plans, hidden, starts, tails)
        self.tails = self._new_tails(plans, hidden, starts, rows)
        cache.lengths = torch.tensor([plan.start for plan in plans], dtype=torch.long)
        self.cache, self.prefixes = cache, [plan.prefix for plan in plans]
        return self.model.head(states)


class BlockCausalDenoiser(_FamilyIds):
    """SDAR or Fast-dLLM v2 from a folder laid out as the published checkpoints are
    (config.json, safetensors, Qwen2 tokenizer files), through engine/architectures, with the
    exact cache above. The architecture is read from config.json; `family` (default: the one
    config.json matches) supplies the special-token rules and the recipe.

    `block_size` is the model's block length (config.json `block_size` for SDAR, `bd_size` for
    Fast-dLLM v2): block k covers the absolute input positions [k * block_size,
    (k + 1) * block_size), position 0 being the prompt's first token."""

    def __init__(
        self,
        folder: str | Path,
        family: Family | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or str(folder)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)
        self.int8 = False
        self.context_cache = None
        config = _read_config(self.name, Path(folder))
        family = family or block_causal_family(config)
        load_model, load_tokenizer = block_causal_loaders(self.name, config)
        self.tokenizer = _attempt(self.name, lambda: load_tokenizer(folder))
        self.model = _attempt(
            self.name, lambda: load_model(folder, dtype=dtype, device=self.device)
        )
        self._take_ids(family, config, [_config_limit(config)])
        self.vocab_size: int = self.model.config.vocab_size
        self.block_size: int = self.model.config.block_size
        self.cache = BlockCausalCache(self.model)

    @property
    def forwarded_tokens(self) -> int:
        return self.cache.forwarded_tokens

    @torch.inference_mode()
    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        return self.cache.logits(input_ids, attention_mask, positions)
