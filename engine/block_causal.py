"""Block-causal diffusion models behind the `Denoiser` protocol, with an exact KV cache.

Block-causal families (SDAR here; Fast-dLLM v2, the dllm bd3lm models and LLaDA 2.0 work the
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
step inside a sub-block), the cache is extended in place and nothing is copied.

The authors' sampler (JetAstra/SDAR `generate.py`) does the same for one row: prefill the
prompt's whole blocks, recompute the current block each step against the cache, store a block
once it has no mask. Where we differ: the cache is found by content instead of being threaded
through one generation loop, so a batch of sections that step together, drop out, or are edited
and resumed in another process all get exact logits without a full recompute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engine.architectures.sdar import (
    SDAR_MASK_TOKENS,
    KVCache,
    SDARModel,
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
    pick_device,
)
from engine.families import Family, Recipe

SDAR = Family(
    name="SDAR (block diffusion)",
    examples=("JetLM/SDAR-1.7B-Chat", "JetLM/SDAR-4B-Chat", "JetLM/SDAR-8B-Chat"),
    architecture="remote_code",
    matches=is_sdar_config,
    # README "Evaluation Setup": greedy, block_length 4, denoising_steps 4 (one token per step);
    # the model's own `block_size` (config.json) replaces the 4 for the 8..64 variants.
    recipe=Recipe(sub_block=4, tokens_per_step=1),
    mask_tokens=SDAR_MASK_TOKENS,
    end_tokens=("<|im_end|>",),
)


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
    benchmarks: a step inside a cached section costs one block per row)."""

    def __init__(self, model: SDARModel) -> None:
        self.model = model
        self.block_size = model.config.block_size
        self.cache: KVCache | None = None
        self.prefixes: list[Tensor] = []
        self.forwarded_tokens = 0

    def _match(self, plans: list[_RowPlan]) -> tuple[list[int], list[int]]:
        """Per plan, the cached row to reuse (-1: none) and how many of its positions."""
        rows, lengths = [], []
        for i, plan in enumerate(plans):
            scores = [_common_blocks(p, plan.prefix, self.block_size) for p in self.prefixes]
            best = max(range(len(scores)), key=lambda j: (scores[j], j == i), default=-1)
            if best < 0 or scores[best] == 0:
                rows.append(-1)
                lengths.append(0)
            else:
                rows.append(best)
                lengths.append(scores[best])
        return rows, lengths

    def _reuse(self, plans: list[_RowPlan], like: Tensor) -> KVCache:
        rows, lengths = self._match(plans)
        if self.cache is not None and rows == list(range(len(self.prefixes))):
            self.cache.lengths = torch.tensor(lengths, dtype=torch.long)
            return self.cache
        if self.cache is not None and any(r >= 0 for r in rows):
            return self.cache.gather(rows, lengths)
        width = max(plan.end for plan in plans)
        return KVCache.empty(self.model.config, len(plans), width, like)

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        """Logits [N, V] at the True entries of `positions` [B, L], row-major: those of the full
        block-causal pass over each right-padded row."""
        input_ids, attention_mask, positions = (
            t.cpu() for t in (input_ids, attention_mask, positions)
        )
        device = self.model.lm_head.weight.device
        plans = _plan(input_ids, attention_mask, positions.bool(), self.block_size)
        if not plans:
            return self.model.lm_head.weight.new_zeros((0, self.model.config.vocab_size))
        cache = self._reuse(plans, self.model.lm_head.weight)
        starts = cache.lengths.tolist()
        widths = [plan.end - start for plan, start in zip(plans, starts, strict=True)]
        block = torch.zeros((len(plans), max(widths)), dtype=torch.long)
        for i, (plan, start, width) in enumerate(zip(plans, starts, widths, strict=True)):
            block[i, :width] = input_ids[plan.row, start : start + width]
        hidden, cache = self.model.forward_block(block.to(device), cache, starts, widths)
        self.forwarded_tokens += sum(widths)
        rows = torch.cat([torch.full_like(p.columns, i) for i, p in enumerate(plans)])
        columns = torch.cat([p.columns - s for p, s in zip(plans, starts, strict=True)])
        cache.lengths = torch.tensor([plan.start for plan in plans], dtype=torch.long)
        self.cache, self.prefixes = cache, [plan.prefix for plan in plans]
        return self.model.head(hidden[rows.to(device), columns.to(device)])


class BlockCausalDenoiser(_FamilyIds):
    """SDAR from a folder laid out as the published checkpoints are (config.json, safetensors,
    Qwen2 tokenizer files), through engine/architectures/sdar.py, with the exact cache above.

    `block_size` is the model's block length (config.json `block_size`): block k covers the
    absolute input positions [k * block_size, (k + 1) * block_size), position 0 being the
    prompt's first token."""

    def __init__(
        self,
        folder: str | Path,
        family: Family = SDAR,
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
        self.tokenizer = _attempt(self.name, lambda: load_sdar_tokenizer(folder))
        self.model = _attempt(self.name, lambda: load_sdar(folder, dtype=dtype, device=self.device))
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
