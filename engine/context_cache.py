"""Cached context for ModernBERT: encode a block's prompt once per round, then each step runs
only the block's canvas through the layers, attending to the prompt's cached keys and values.

This is Fast-dLLM's prefix cache carried over to a bidirectional encoder, where it is an
approximation: in an exact forward pass the prompt also attends to the canvas, so its keys and
values change as the canvas fills in; here they are computed from the prompt alone. The canvas
still attends to everything, so what it reads of the prompt is current up to that one-way view.
How close the proposals stay to exact recompute is measured in `bench/denoise.py`.

The layer loop re-implements `ModernBertModel.forward` (checked against transformers 5.23, and by
a test that the uncached path equals the library's forward) so that keys and values can be kept
and prepended.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import ModernBertForMaskedLM
from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb


@dataclass(frozen=True)
class PromptCache:
    """Keys and values of a batch of prompts, per layer, right-padded to the longest."""

    keys: list[Tensor]  # per layer [B, heads, P, head_dim]
    values: list[Tensor]
    real: Tensor  # [B, P] bool: a real prompt token, not padding
    lengths: Tensor  # [B] prompt lengths: the canvas starts at this position


class ModernBertContextCache:
    def __init__(self, model: ModernBertForMaskedLM):
        self.model = model
        self.body = model.model
        config = model.config
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.window = config.sliding_window

    def _layers(
        self,
        input_ids: Tensor,
        positions: Tensor,
        key_positions: Tensor,
        key_real: Tensor,
        past: PromptCache | None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Run every layer for `input_ids` [B, L] at `positions` [B, L], attending to the past
        (if any) followed by themselves; returns the hidden states and this input's keys and
        values per layer."""
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
            query, key = apply_rotary_pos_emb(query, key, cos, sin, unsqueeze_dim=1)
            keys.append(key)
            values.append(value)
            if past is not None:
                key = torch.cat([past.keys[index], key], dim=2)
                value = torch.cat([past.values[index], value], dim=2)
            mask = masks[layer.attention_type][:, None]
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
            attended = attended.transpose(1, 2).reshape(batch, length, -1)
            hidden = hidden + layer.attn.Wo(attended)
            hidden = hidden + layer.mlp(layer.mlp_norm(hidden))
        return self.body.final_norm(hidden), keys, values

    @torch.inference_mode()
    def encode_prompts(self, prompts: list[list[int]], pad_id: int) -> PromptCache:
        width = max(len(p) for p in prompts)
        device = self.model.device
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
        real = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
            real[row, : len(prompt)] = True
        positions = torch.arange(width, device=device).expand(len(prompts), -1)
        _, keys, values = self._layers(ids, positions, positions, real, past=None)
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        return PromptCache(keys, values, real, lengths)

    @torch.inference_mode()
    def canvas_hidden(self, cache: PromptCache, canvas_ids: Tensor, canvas_real: Tensor) -> Tensor:
        """Hidden states [B, C, H] of the canvases, each placed right after its prompt;
        `canvas_real` [B, C] marks real canvas tokens (canvases may differ in length)."""
        batch, length = canvas_ids.shape
        device = self.model.device
        offsets = torch.arange(length, device=device)
        positions = cache.lengths[:, None] + offsets[None]
        width = cache.real.shape[1]
        prompt_positions = torch.arange(width, device=device).expand(batch, -1)
        key_positions = torch.cat([prompt_positions, positions], dim=1)
        key_real = torch.cat([cache.real, canvas_real.to(device).bool()], dim=1)
        hidden, _, _ = self._layers(
            canvas_ids.to(device), positions, key_positions, key_real, cache
        )
        return hidden

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
