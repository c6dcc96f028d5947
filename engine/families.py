"""Model families as data: how each loads, where its special ids come from, the context it was
trained at, and the sampling recipe its authors publish.

A family is recognised from the checkpoint's config.json (`model_type`, `architectures`), never
from its name. Its special ids come from the config first, then the tokenizer, and only then
from the token strings the family's tokenizer is known to use (looked up in the vocabulary, so a
checkpoint that moves them still works).

The recipes are read from the authors' code (December 2026):
- BERT-chat (dllm-hub/ModernBERT-*-chat-v0.1): ZHZisZZ/dllm `examples/bert/sample.py` and
  `chat.py` run `MDLMSampler` with 128 new tokens, 128 steps, blocks of 32, temperature 0 and
  low-confidence remasking; `dllm/utils/models.py` sets the `[SYS]`/`[Question]`/`[Answer]`
  template and the end of turn `[/Answer]`; the tokenizer has no EOS, so dllm uses `[PAD]` as
  EOS and `sample_trim` cuts the answer at the first one. SFT ran at max length 1024.
- LLaDA-8B-Instruct and LLaDA-1.5: ML-GSAI/LLaDA `generate.py` and `chat.py`: gen_length 128,
  steps 128, block_length 32, temperature 0, low-confidence remasking, no guidance; the answer
  ends at `<|eot_id|>` or EOS, which the SFT data repeats to the end of the canvas.
- LLaDA-MoE-7B-A1B-Instruct: the same recipe (its model card's generate call); dllm sets
  `<|mask|>` as mask and `<|role_end|>` as end of turn.
- Dream-v0-Instruct-7B and Dream-Coder: the model card's `diffusion_generate` call: steps equal
  to the answer length, temperature 0.2, top-p 0.95, `alg="entropy"`, `alg_temp=0`, the eps
  timestep schedule (eps 1e-3), the whole answer decoded at once (Dream has no sub-blocks);
  scores are read from the tempered, filtered distribution it samples from.
- SDAR and Fast-dLLM v2 (block-causal, engine/block_causal.py): see their comments below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from engine.architectures.fast_dllm_v2 import FAST_DLLM_V2_MASK_TOKENS, is_fast_dllm_v2_config
from engine.architectures.sdar import SDAR_MASK_TOKENS, is_sdar_config

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from engine.draft import DraftSettings

Architecture = Literal["masked_lm", "llada", "dream", "block_causal", "remote_code"]

MASKED_LM_TYPES = {
    "bert",
    "modernbert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "electra",
    "deberta-v2",
}


@dataclass(frozen=True)
class Recipe:
    """A published sampling recipe, in the terms of `DraftSettings`."""

    sub_block: int  # tokens decoded in parallel, left to right between them; 0: the whole canvas
    tokens_per_step: float  # steps per run = canvas tokens / this
    order: str = "low_confidence"
    threshold: float | None = None
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    schedule: str = "linear"
    score_sampled: bool = False
    min_tokens: int = 0
    ends_last: bool = False
    cfg: float = 0.0

    def steps_for(self, block_tokens: int) -> int:
        """Steps of one run of a canvas of `block_tokens`."""
        return max(1, math.ceil(block_tokens / self.tokens_per_step))

    def apply(self, settings: DraftSettings) -> DraftSettings:
        """`settings` with every sampling field set to this recipe's value."""
        return replace(
            settings,
            steps=self.steps_for(settings.block_tokens),
            sub_block=self.sub_block,
            order=self.order,
            threshold=self.threshold,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            schedule=self.schedule,
            score_sampled=self.score_sampled,
            min_tokens=self.min_tokens,
            ends_last=self.ends_last,
            cfg=self.cfg,
        )


RECIPE_FIELDS = frozenset(
    {
        "steps",
        "sub_block",
        "order",
        "threshold",
        "temperature",
        "top_p",
        "top_k",
        "schedule",
        "score_sampled",
        "min_tokens",
        "ends_last",
        "cfg",
    }
)  # the DraftSettings fields a recipe sets


@dataclass(frozen=True)
class Family:
    name: str
    examples: tuple[str, ...]
    architecture: Architecture
    matches: Callable[[dict], bool]
    recipe: Recipe
    trained_context: int | None = None  # the longest input it was tuned on, if shorter
    mask_tokens: tuple[str, ...] = ()  # token strings its tokenizers use for the mask
    end_tokens: tuple[str, ...] = ()  # token strings that end an answer, besides EOS
    pad_ends: bool = False  # padding ends an answer (BERT-chat fills the tail with [PAD])


def _architectures(config: dict) -> set[str]:
    return set(config.get("architectures") or [])


def _model_type(config: dict) -> str:
    return str(config.get("model_type", "")).lower()


BERT_CHAT = Family(
    name="BERT-chat (masked LM)",
    examples=("dllm-hub/ModernBERT-large-chat-v0.1", "dllm-hub/ModernBERT-base-chat-v0.1"),
    architecture="masked_lm",
    matches=lambda c: _model_type(c) in MASKED_LM_TYPES,
    recipe=Recipe(sub_block=32, tokens_per_step=1),
    trained_context=1024,
    pad_ends=True,
)

LLADA = Family(
    name="LLaDA",
    examples=("GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-1.5"),
    architecture="llada",
    matches=lambda c: _model_type(c) == "llada" and "LLaDAModelLM" in _architectures(c),
    recipe=Recipe(sub_block=32, tokens_per_step=1),
    mask_tokens=("<|mdm_mask|>",),
    end_tokens=("<|eot_id|>",),
)

LLADA_MOE = Family(
    name="LLaDA-MoE",
    examples=("inclusionAI/LLaDA-MoE-7B-A1B-Instruct",),
    architecture="llada",
    matches=lambda c: (
        "LLaDAMoEModelLM" in _architectures(c) or _model_type(c) in {"lladamoe", "llada_moe"}
    ),
    recipe=Recipe(sub_block=32, tokens_per_step=1),
    mask_tokens=("<|mask|>",),
    end_tokens=("<|role_end|>",),
)

DREAM = Family(
    name="Dream",
    examples=("Dream-org/Dream-v0-Instruct-7B", "Dream-org/Dream-Coder-v0-Instruct-7B"),
    architecture="dream",
    matches=lambda c: _model_type(c) == "dream",
    recipe=Recipe(
        sub_block=0,
        tokens_per_step=1,
        order="entropy",
        temperature=0.2,
        top_p=0.95,
        schedule="eps",
        score_sampled=True,
    ),
    mask_tokens=("<|mask|>",),
    end_tokens=("<|im_end|>",),
)

SDAR = Family(
    name="SDAR (block diffusion)",
    examples=("JetLM/SDAR-1.7B-Chat", "JetLM/SDAR-4B-Chat", "JetLM/SDAR-8B-Chat"),
    architecture="block_causal",
    matches=is_sdar_config,
    # README "Evaluation Setup": greedy, block_length 4, denoising_steps 4 (one token per step);
    # the model's own `block_size` (config.json) replaces the 4 for the 8..64 variants.
    recipe=Recipe(sub_block=4, tokens_per_step=1),
    mask_tokens=SDAR_MASK_TOKENS,
    end_tokens=("<|im_end|>",),
)

FAST_DLLM_V2 = Family(
    name="Fast-dLLM v2 (block diffusion)",
    examples=("Efficient-Large-Model/Fast_dLLM_v2_7B",),
    architecture="block_causal",
    matches=is_fast_dllm_v2_config,
    # v2/run_chatbot.py: blocks of 32 (the cache), sub-blocks of 8 (the sampler), threshold 0.9.
    recipe=Recipe(sub_block=8, tokens_per_step=1, threshold=0.9),
    mask_tokens=FAST_DLLM_V2_MASK_TOKENS,
    end_tokens=("<|im_end|>",),
)

REMOTE_CODE = Family(
    name="other masked diffusion LM (its own modelling code)",
    examples=(),
    architecture="remote_code",
    matches=lambda c: "auto_map" in c,
    recipe=Recipe(sub_block=32, tokens_per_step=1),
    mask_tokens=("<|mdm_mask|>", "<|mask|>", "[MASK]"),
    end_tokens=("<|eot_id|>", "<|im_end|>", "<|endoftext|>"),
)

FAMILIES = (SDAR, FAST_DLLM_V2, LLADA_MOE, LLADA, DREAM, BERT_CHAT, REMOTE_CODE)  # first match wins

FAST_THRESHOLD = 0.9  # Fast-dLLM's setting for LLaDA


def fast_cpu(recipe: Recipe) -> Recipe:
    """The "fast on CPU" preset: Fast-dLLM's confidence threshold inside the family's own
    sub-blocks (with int8 linear layers, set by the caller). Opt-in: it changes the commits."""
    return replace(recipe, threshold=FAST_THRESHOLD)


class UnknownFamily(ValueError):
    pass


def family_of_config(config: dict) -> Family:
    for family in FAMILIES:
        if family.matches(config):
            return family
    kind = config.get("model_type") or "unknown"
    raise UnknownFamily(
        f"its config (model_type {kind!r}) is not a masked-diffusion family this app knows: "
        "BERT-style masked LMs, LLaDA, LLaDA-MoE and Dream are"
    )


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


@dataclass(frozen=True)
class SpecialIds:
    mask: int
    ends: tuple[int, ...]  # ids that end a section's text
    pad: int


def _lookup(tokenizer: PreTrainedTokenizerBase, tokens: tuple[str, ...]) -> list[int]:
    vocab = tokenizer.get_vocab()
    return [vocab[token] for token in tokens if token in vocab]


def special_ids(family: Family, config: dict, tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """Mask, end and pad ids: config keys first, the tokenizer's declared tokens second, the
    family's known token strings last. Raises ValueError when no mask id can be found."""
    masks = [config.get("mask_token_id"), tokenizer.mask_token_id]
    masks += _lookup(tokenizer, family.mask_tokens)
    mask = next((m for m in masks if m is not None), None)
    if mask is None:
        raise ValueError("neither its config nor its tokenizer names a mask token")
    eos = config.get("eos_token_id", tokenizer.eos_token_id)
    ends = [*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id]
    ends += _lookup(tokenizer, family.end_tokens)
    pad = config.get("pad_token_id", tokenizer.pad_token_id)
    if family.pad_ends or eos is None:
        ends.append(pad)
    if pad is None:
        pad = next((e for e in ends if e is not None), 0)
    return SpecialIds(
        mask=int(mask), ends=tuple(sorted({int(e) for e in ends if e is not None})), pad=int(pad)
    )
