"""Fast-dLLM's prefix cache for ModernBERT, kept exact across a resume.

The rule is `generate_with_prefix_cache` in Fast-dLLM's llada/generate.py. A block's canvas is
decoded in sub-blocks; at the start of each one a cache *epoch* starts with one full forward pass
over the whole sequence (prompt + canvas). Its logits serve that step, and the keys and values of
the prefix (everything before the current sub-block: the prompt and the finished sub-blocks) are
kept. Every further step of the epoch runs only the tail (the current sub-block and everything
after it) through the layers, attending to the kept prefix keys/values and to itself. Here a
rebuilt prompt (retrieval refreshes it every `refresh_every` steps) starts an epoch too.

It is an approximation, as in Fast-dLLM: within an epoch the prefix's keys and values are those of
the canvas at the epoch start, while the tail fills in. A speed option that can change what gets
committed, so it is opt-in (DESIGN section 2).

Exact resume. The cache is not persisted. A block records the draft step its epoch started at
(`Block.cache_epoch`). Steps commit only into masks and record when (`commit_step`), so the canvas
at the epoch start is the current one with every position committed after that step masked again
(`epoch_tokens`), and a new process rebuilds the prefix by re-running the full pass on it. The
rebuilt keys and values are bit for bit the live ones because full passes always run one block
alone, in the live run and in the rebuild: a batched pass pads rows to a common width, and the
padding (and int8's per-tensor activation scales) change the last bits. Tail passes are batched;
after a resume the same blocks step together in the same order (see engine/sampler.py), so that
batch is the same too. The in-memory cache is keyed by what it was computed from, so anything that
changes the canvas outside a step (an edit) is met by the same rebuild in a live and a resumed run.

The layer loop re-implements `ModernBertModel.forward` (checked against transformers 5.24, and by a
test that the uncached path equals the library's forward) so that keys and values can be kept and
prepended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.sampler import Canvas, active

if TYPE_CHECKING:  # a ModernBERT model exists only once transformers is imported
    from transformers import ModernBertForMaskedLM

    from engine.draft import Block

KeyValues = tuple[list[Tensor], list[Tensor]]  # per layer [B, heads, positions, head_dim]


@dataclass(frozen=True)
class PrefixCache:
    """One block's prefix keys and values per layer, and what they were computed from."""

    source: tuple  # (epoch step, window start, prompt, canvas tokens at the epoch start)
    keys: list[Tensor]  # per layer [1, heads, P, head_dim]
    values: list[Tensor]

    @property
    def length(self) -> int:
        return self.keys[0].shape[2]


@dataclass(frozen=True)
class StackedPrefixes:
    """Prefix caches of a batch, right-padded to the longest, in buffers with room for a tail of
    `tail_width` after them: a tail pass writes its keys and values there instead of copying the
    prefix into a new tensor every step."""

    parts: tuple[PrefixCache, ...]
    tail_width: int
    past: KeyValues  # per layer [B, heads, P + tail_width, head_dim]
    real: Tensor  # [B, P] bool: a real prefix position, not padding
    lengths: Tensor  # [B] prefix lengths: each tail starts at this position


class ModernBertContextCache:
    """The model side: full passes that keep a prefix, tail passes that attend to it."""

    def __init__(self, model: ModernBertForMaskedLM):
        from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

        self.rotate = apply_rotary_pos_emb
        self.model = model
        self.body = model.model
        config = model.config
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.window = config.sliding_window
        self.pad_id = config.pad_token_id or 0

    def _layers(
        self,
        input_ids: Tensor,
        positions: Tensor,
        key_positions: Tensor,
        key_real: Tensor,
        past: KeyValues | None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Run every layer for `input_ids` [B, L] at `positions` [B, L], attending to the past
        (if any: buffers whose last L positions are this input's, filled here) followed by
        themselves; returns the hidden states and this input's keys and values per layer."""
        batch, length = input_ids.shape
        hidden = self.body.embeddings(input_ids=input_ids)
        rotary = {
            kind: self.body.rotary_emb(hidden, positions, kind)
            for kind in set(self.model.config.layer_types)
        }
        distance = (positions[:, :, None] - key_positions[:, None, :]).abs()
        allowed = key_real[:, None, :].expand(batch, length, -1)
        masks = {
            "full_attention": allowed,
            "sliding_attention": allowed & (distance <= self.window),
        }
        keys, values = [], []
        for index, layer in enumerate(self.body.layers):
            qkv = layer.attn.Wqkv(layer.attn_norm(hidden))
            qkv = qkv.view(batch, length, 3, self.heads, self.head_dim).transpose(1, 3)
            query, key, value = qkv.unbind(dim=2)  # each [B, heads, L, head_dim]
            cos, sin = rotary[layer.attention_type]
            query, key = self.rotate(query, key, cos, sin, unsqueeze_dim=1)
            keys.append(key)
            values.append(value)
            if past is not None:
                past[0][index][:, :, -length:] = key
                past[1][index][:, :, -length:] = value
                key, value = past[0][index], past[1][index]
            mask = masks[layer.attention_type][:, None]
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
            attended = attended.transpose(1, 2).reshape(batch, length, -1)
            hidden = hidden + layer.attn.Wo(attended)
            hidden = hidden + layer.mlp(layer.mlp_norm(hidden))
        return self.body.final_norm(hidden), keys, values

    @torch.inference_mode()
    def full_pass(
        self, ids: Tensor, prefix: int, candidates: Tensor | None
    ) -> tuple[Tensor | None, KeyValues]:
        """One sequence `ids` [L], alone (no padding, so the result never depends on a batch):
        logits at `candidates` ([L] bool; None: no logits), and the keys and values of its
        first `prefix` positions per layer."""
        device = self.model.device
        ids = ids.to(device)[None]
        positions = torch.arange(ids.shape[1], device=device)[None]
        real = torch.ones(ids.shape, dtype=torch.bool, device=device)
        hidden, keys, values = self._layers(ids, positions, positions, real, past=None)
        logits = None if candidates is None else self.head(hidden[0, candidates.to(device)])
        kept = [k[:, :, :prefix].clone() for k in keys], [v[:, :, :prefix].clone() for v in values]
        return logits, kept

    def stack(self, parts: Sequence[PrefixCache], tail_width: int) -> StackedPrefixes:
        """Right-pad the prefix caches of a batch to the longest (padding is masked out)."""
        device = self.model.device
        width = max(part.length for part in parts)
        real = torch.zeros((len(parts), width), dtype=torch.bool, device=device)
        for row, part in enumerate(parts):
            real[row, : part.length] = True

        def padded(layer: int, kind: int) -> Tensor:
            first = (parts[0].keys, parts[0].values)[kind][layer]
            out = first.new_zeros((len(parts), self.heads, width + tail_width, self.head_dim))
            for row, part in enumerate(parts):
                out[row, :, : part.length] = (part.keys, part.values)[kind][layer][0]
            return out

        layers = range(len(parts[0].keys))
        past = [padded(i, 0) for i in layers], [padded(i, 1) for i in layers]
        lengths = torch.tensor([part.length for part in parts], device=device)
        return StackedPrefixes(tuple(parts), tail_width, past, real, lengths)

    @torch.inference_mode()
    def tail_pass(
        self, prefixes: StackedPrefixes, tails: Sequence[Tensor], candidates: Sequence[Tensor]
    ) -> Tensor:
        """Logits at `candidates` ([T_b] bool each) of every tail [T_b], each placed right after
        its prefix and attending to the prefix's cached keys and values and to itself; one
        batched pass, tails right-padded to `prefixes.tail_width`. Rows in batch order, positions
        ascending."""
        device = self.model.device
        batch, width = len(tails), prefixes.tail_width
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        real = torch.zeros((batch, width), dtype=torch.bool, device=device)
        wanted = torch.zeros((batch, width), dtype=torch.bool, device=device)
        for row, (tail, chosen) in enumerate(zip(tails, candidates, strict=True)):
            ids[row, : len(tail)] = tail.to(device)
            real[row, : len(tail)] = True
            wanted[row, : len(tail)] = chosen.to(device)
        positions = prefixes.lengths[:, None] + torch.arange(width, device=device)[None]
        prefix_positions = torch.arange(prefixes.real.shape[1], device=device).expand(batch, -1)
        key_positions = torch.cat([prefix_positions, positions], dim=1)
        key_real = torch.cat([prefixes.real, real], dim=1)
        hidden, _, _ = self._layers(ids, positions, key_positions, key_real, prefixes.past)
        return self.head(hidden[wanted])

    @torch.inference_mode()
    def exact_hidden(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The uncached forward through the same code: equals `ModernBertModel.forward`."""
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device).expand(batch, -1)
        real = attention_mask.bool()
        hidden, _, _ = self._layers(input_ids, positions, positions, real, past=None)
        return hidden

    @torch.inference_mode()
    def head(self, hidden: Tensor) -> Tensor:
        return self.model.decoder(self.model.head(hidden))


def epoch_tokens(canvas: Canvas, epoch: int) -> Tensor:
    """The canvas's tokens as they were after draft step `epoch`: a step commits only into masks
    and records its step (`commit_step`), so every position committed later was a mask then."""
    return canvas.tokens.masked_fill(canvas.commit_step > epoch, canvas.mask_id)


def starts_epoch(block: Block) -> bool:
    """Whether this step of the block starts a cache epoch (a full pass): the first step of a
    sub-block (`window_step` 0), or the first after its prompt changed or it never had one
    (`cache_epoch` -1, set by the drafting loop when it rebuilds a prompt)."""
    return block.cache_epoch < 0 or block.window_step == 0


class PrefixCaches:
    """The prefix caches of one draft's blocks during one `Drafter.run`, in memory only."""

    def __init__(self, model: ModernBertContextCache):
        self.model = model
        self.memory: dict[int, PrefixCache] = {}  # block index -> its epoch's prefix
        self._stacked: StackedPrefixes | None = None

    def logits(
        self, indices: Sequence[int], blocks: Sequence[Block], step: int, sub_block: int
    ) -> Tensor:
        """Logits [N, V] at every block's `active` positions, block by block, as
        `sampler.step` reads them. Blocks whose epoch starts now (`starts_epoch`; their
        `cache_epoch` becomes `step`, the draft's step count before this step) get a full pass
        each; the others share one tail pass over their epoch's prefix."""
        rows: list[Tensor | None] = []
        tails: list[tuple[PrefixCache, Tensor, Tensor]] = []
        for index, block in zip(indices, blocks, strict=True):
            candidates = active(block.canvas, sub_block)
            if starts_epoch(block):
                block.cache_epoch = step
                logits, self.memory[index] = self._epoch(block, candidates)
                rows.append(logits)
                continue
            prefix = self._prefix(index, block)
            start = block.window_start
            tails.append((prefix, block.canvas.tokens[start:], candidates[start:]))
            rows.append(None)
        if tails:
            rows = self._fill(rows, tails)
        return torch.cat(rows)

    def _fill(
        self, rows: list[Tensor | None], tails: list[tuple[PrefixCache, Tensor, Tensor]]
    ) -> list[Tensor]:
        """`rows` with each None replaced by its block's tail logits, from one batched pass."""
        prefixes = [prefix for prefix, _, _ in tails]
        width = max(len(tail) for _, tail, _ in tails)
        stacked = self._stacked
        if (
            stacked is None
            or stacked.tail_width != width
            or len(stacked.parts) != len(prefixes)
            or any(a is not b for a, b in zip(stacked.parts, prefixes, strict=True))
        ):  # the same epochs as the last step: reuse the padded batch instead of copying again
            stacked = self._stacked = self.model.stack(prefixes, width)
        logits = self.model.tail_pass(
            stacked, [tail for _, tail, _ in tails], [chosen for _, _, chosen in tails]
        )
        pieces = iter(logits.split([int(chosen.sum()) for _, _, chosen in tails]))
        return [row if row is not None else next(pieces) for row in rows]

    def _epoch(self, block: Block, candidates: Tensor | None) -> tuple[Tensor | None, PrefixCache]:
        """The full pass of the block's epoch over its prompt and its canvas at the epoch start:
        the logits at `candidates` (None: none) and the prefix cache."""
        tokens = epoch_tokens(block.canvas, block.cache_epoch)
        ids = torch.cat([torch.tensor(block.prompt, dtype=torch.long), tokens])
        prefix = len(block.prompt) + block.window_start
        if candidates is not None:
            candidates = torch.cat([torch.zeros(len(block.prompt), dtype=torch.bool), candidates])
        logits, (keys, values) = self.model.full_pass(ids, prefix, candidates)
        return logits, PrefixCache(_source(block, tokens), keys, values)

    def _prefix(self, index: int, block: Block) -> PrefixCache:
        """The block's epoch prefix: from memory if it was computed from what the block holds
        now, else rebuilt exactly as it was at the epoch start (after a resume, or an edit)."""
        kept = self.memory.get(index)
        tokens = epoch_tokens(block.canvas, block.cache_epoch)
        if kept is None or kept.source != _source(block, tokens):
            _, kept = self._epoch(block, None)
            self.memory[index] = kept
        return kept


def _source(block: Block, tokens: Tensor) -> tuple:
    return (block.cache_epoch, block.window_start, tuple(block.prompt), tuple(tokens.tolist()))
