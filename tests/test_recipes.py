"""The engine's sampler against the references' own loops, replayed plainly in this file.

Each reference loop below is a short re-implementation of the authors' sampling code at
temperature 0, written from their source (named in each docstring), and run on the same tiny
checkpoint with the prompt the engine built. The engine must make exactly the same commits, at
the same steps, up to the end of each section's text. Like dllm's `MDLMSampler` with
`suppress_tokens`, the references here remove the engine's forbidden ids (the mask, special
tokens, unused rows) from the logits first; they decode the whole canvas, where the engine stops
once a section's text has ended (later positions cannot change it).
"""

from __future__ import annotations

import math

import pytest
import torch
from drafting_fixtures import INSTRUCTION
from dream_checkpoints import write_dream_checkpoint
from llada_checkpoints import write_dense_checkpoint, write_moe_checkpoint

from engine.denoiser import NativeDenoiser, load_denoiser
from engine.draft import DraftSettings, canvas_text, pin_selection
from engine.drafting import Drafter
from engine.families import BERT_CHAT, DREAM, LLADA, LLADA_MOE, Recipe
from engine.sampler import Canvas, window
from engine.testmodels import build_tiny_bert

HEADINGS = ["Termination for convenience", "Effect of termination"]


def full_logits(denoiser, x: torch.Tensor) -> torch.Tensor:
    """The model's logits [L, V] at every position of one sequence (shift applied, as the
    references apply it)."""
    everywhere = torch.ones_like(x, dtype=torch.bool)[None]
    return denoiser.logits(x[None], torch.ones_like(x)[None], everywhere).float().clone()


def suppressed(denoiser, drafter: Drafter, x: torch.Tensor, cfg: float = 0.0, prompt: int = 0):
    """The logits the reference reads; with `cfg`, LLaDA's guidance: the same sequence with its
    `prompt` first tokens masked, combined as un + (cfg + 1) * (cond - un)."""
    logits = full_logits(denoiser, x)
    if cfg > 0:
        unconditional = x.clone()
        unconditional[:prompt] = denoiser.mask_token_id
        un = full_logits(denoiser, unconditional)
        logits = un + (cfg + 1) * (logits - un)
    logits[:, drafter.forbidden] = float("-inf")
    return logits


def llada_reference(drafter, prompt, length, steps, block, threshold=None, cfg=0.0):
    """ML-GSAI/LLaDA `generate.py` (and dllm's `MDLMSampler`): blocks of `block` tokens left to
    right, steps // blocks steps each, `get_num_transfer_tokens` (base plus the remainder first),
    argmax proposals, confidence = softmax(logits)[x0], top-k inside the current block. With a
    `threshold`, Fast-dLLM's `get_transfer_index`: the best one plus every other >= threshold,
    until the block has no mask. Returns the final tokens and the step of every commit."""
    denoiser = drafter.denoiser
    mask = denoiser.mask_token_id
    x = torch.tensor(prompt + [mask] * length)
    committed_at = torch.full((len(x),), -1)
    start, number = len(prompt), 0
    per_block = steps // math.ceil(length / block)
    for b in range(math.ceil(length / block)):
        lo, hi = start + b * block, min(start + (b + 1) * block, len(x))
        n = int((x[lo:hi] == mask).sum())
        counts = [n // per_block + (1 if i < n % per_block else 0) for i in range(per_block)]
        i = 0
        while (x[lo:hi] == mask).any():
            logits = suppressed(denoiser, drafter, x, cfg, start)
            x0 = logits.argmax(-1)
            confidence = torch.softmax(logits, -1).gather(-1, x0[:, None]).squeeze(-1)
            confidence[hi:] = float("-inf")
            confidence = torch.where(x == mask, confidence, float("-inf"))
            if threshold is None:
                chosen = torch.topk(confidence, counts[i]).indices
            else:
                ranked = torch.topk(confidence, int((x == mask)[:hi].sum())).indices
                chosen = ranked[
                    [0] + [k for k in range(1, len(ranked)) if confidence[ranked[k]] >= threshold]
                ]
            number += 1
            x[chosen] = x0[chosen]
            committed_at[chosen] = number
            i += 1
    return x[start:], committed_at[start:]


def dream_reference(drafter, prompt, length, steps, top_p, eps=1e-3):
    """Dream `generation_utils.py` `_sample` at temperature 0 with alg="entropy", a batch of one:
    time over linspace(1, eps, steps + 1); top-p filtering, softmax; x0 = argmax; confidence =
    sum p log(p + 1e-10) of the filtered distribution; int(n * (1 - s / t)) masks revealed (all
    on the last step) by top-k of the confidence."""
    denoiser = drafter.denoiser
    mask = denoiser.mask_token_id
    x = torch.tensor(prompt + [mask] * length)
    committed_at = torch.full((len(x),), -1)
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        masked = x == mask
        logits = suppressed(denoiser, drafter, x)[masked]
        ordered, order = torch.sort(logits, descending=True)
        beyond = torch.softmax(ordered, -1).cumsum(-1) > top_p
        beyond[:, 1:] = beyond[:, :-1].clone()
        beyond[:, 0] = False
        logits = logits.masked_fill(beyond.scatter(1, order, beyond), float("-inf"))
        probs = torch.softmax(logits, -1)
        x0 = probs.argmax(-1)
        confidence = (probs * torch.log(probs + 1e-10)).sum(-1)
        t, s = timesteps[i], timesteps[i + 1]
        n = int(masked.sum())
        count = int(n * (1 - s / t)) if i < steps - 1 else n
        full = torch.full((len(x),), float("-inf"))
        full[masked] = confidence
        proposals = torch.full((len(x),), mask)
        proposals[masked] = x0
        if count:
            chosen = torch.topk(full, count).indices
            x[chosen] = proposals[chosen]
            committed_at[chosen] = i + 1
    return x[len(prompt) :], committed_at[len(prompt) :]


def assert_same_commits(block, reference_tokens, reference_steps) -> None:
    """The engine's commits equal the reference's up to the end of the section's text."""
    end = block.canvas.end
    assert end > 0, "the section ended at once: nothing to compare"
    assert torch.equal(block.canvas.tokens[:end], reference_tokens[:end])
    assert torch.equal(block.canvas.commit_step[:end], reference_steps[:end])
    if end < len(block.canvas):
        assert int(reference_tokens[end]) in block.canvas.end_ids


def draft_with(workspace, model: str, recipe: Recipe, **overrides):
    drafter = workspace.drafter(model)
    settings = DraftSettings.from_recipe(
        recipe, model=model, passages=2, refresh_every=0, **overrides
    )
    draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=0)
    list(drafter.run(draft))
    return drafter, draft


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("recipe-models")
    return {
        "bert": str(build_tiny_bert(root / "bert")),
        "llada": str(write_dense_checkpoint(root / "llada", seed=1, max_sequence_length=1024)),
        "llada-moe": str(
            write_moe_checkpoint(root / "llada-moe", seed=2, max_position_embeddings=1024)
        ),
        "dream": str(
            write_dream_checkpoint(
                root / "dream",
                seed=3,
                dtype=torch.float32,
                config_overrides={"max_position_embeddings": 1024},
            )
        ),
    }


@pytest.mark.parametrize(
    ("name", "family", "steps"),
    [("bert", BERT_CHAT, None), ("llada", LLADA, 32), ("llada-moe", LLADA_MOE, 32)],
)
def test_sub_block_recipes_commit_what_llada_generate_commits(
    workspace, checkpoints, name, family, steps
):
    drafter, draft = draft_with(
        workspace, checkpoints[name], family.recipe, block_tokens=64, steps=steps
    )
    assert drafter.denoiser.family is family
    settings = draft.settings
    assert settings.sub_block == 32 and settings.steps == (steps or 64)
    for block in draft.blocks:
        tokens, at = llada_reference(drafter, block.prompt, 64, settings.steps, 32)
        assert_same_commits(block, tokens, at)


def test_guidance_commits_what_llada_generate_commits_with_cfg(workspace, checkpoints):
    drafter, draft = draft_with(
        workspace, checkpoints["llada"], LLADA.recipe, block_tokens=32, steps=16, cfg=1.5
    )
    for block in draft.blocks:
        tokens, at = llada_reference(drafter, block.prompt, 32, 16, 32, cfg=1.5)
        assert_same_commits(block, tokens, at)
    unguided = draft_with(workspace, checkpoints["llada"], LLADA.recipe, block_tokens=32, steps=16)
    assert not all(
        a.canvas.equals(b.canvas) for a, b in zip(draft.blocks, unguided[1].blocks, strict=True)
    )


def test_threshold_commits_what_fast_dllm_commits(workspace, checkpoints):
    recipe = Recipe(sub_block=32, tokens_per_step=1, threshold=0.004)
    drafter, draft = draft_with(workspace, checkpoints["llada"], recipe, block_tokens=64)
    commits_per_step = []
    for block in draft.blocks:
        tokens, at = llada_reference(drafter, block.prompt, 64, 64, 32, threshold=0.004)
        assert_same_commits(block, tokens, at)
        commits_per_step.append(torch.bincount(at[at > 0]).max())
    assert max(commits_per_step) > 1  # the threshold really committed several at once


def test_dream_recipe_commits_what_dream_sample_commits(workspace, checkpoints):
    drafter, draft = draft_with(
        workspace, checkpoints["dream"], DREAM.recipe, block_tokens=24, temperature=0.0
    )
    assert isinstance(drafter.denoiser, NativeDenoiser) and drafter.denoiser.family is DREAM
    settings = draft.settings
    assert settings.sub_block == 0 and settings.order == "entropy" and settings.top_p == 0.95
    for block in draft.blocks:
        tokens, at = dream_reference(drafter, block.prompt, 24, settings.steps, 0.95)
        assert_same_commits(block, tokens, at)


def test_resume_is_exact_with_sub_blocks_and_sampling(workspace, checkpoints):
    model = checkpoints["llada"]
    drafter = workspace.drafter(model)
    settings = DraftSettings.from_recipe(
        LLADA.recipe, model=model, block_tokens=48, passages=2, temperature=0.7, top_k=20
    )
    whole = drafter.start(INSTRUCTION, HEADINGS, settings, seed=5)
    list(drafter.run(whole))
    paused = drafter.start(INSTRUCTION, HEADINGS, settings, seed=5)
    list(drafter.run(paused, stop_after=37))  # stops inside the second sub-block
    reloaded, fresh = workspace.open_to_run(paused.draft_id)
    assert reloaded.blocks[0].window_start == 32
    list(fresh.run(reloaded))
    for a, b in zip(whole.blocks, reloaded.blocks, strict=True):
        assert a.canvas.equals(b.canvas)


class PadHappyDenoiser:
    """A real tiny BERT whose [PAD] logit is raised as BERT-chat's training shapes it: the
    further into the canvas (`slope` per token, from `offset`), and when [PAD] already follows,
    the likelier [PAD]. Rows are prompt + a canvas of `canvas_tokens`, right-padded."""

    def __init__(self, inner, canvas_tokens: int, slope: float, offset: float):
        self.inner, self.canvas_tokens, self.slope, self.offset = (
            inner,
            canvas_tokens,
            slope,
            offset,
        )
        for name in ("tokenizer", "mask_token_id", "end_ids", "pad_token_id", "family"):
            setattr(self, name, getattr(inner, name))
        self.max_length, self.vocab_size = inner.max_length, inner.vocab_size
        self.device, self.int8, self.context_cache = inner.device, False, None

    def logits(self, input_ids, attention_mask, positions):
        logits = self.inner.logits(input_ids, attention_mask, positions).float().clone()
        rows, columns = positions.nonzero(as_tuple=True)
        canvas_start = attention_mask.sum(-1) - self.canvas_tokens
        following = torch.zeros_like(input_ids, dtype=torch.bool)
        following[:, :-1] = input_ids[:, 1:] == self.pad_token_id
        distance = (columns - canvas_start[rows]).float()
        bonus = self.offset + self.slope * distance + 12.0 * following[rows, columns]
        logits[:, self.pad_token_id] = logits.max(-1).values + bonus
        return logits


def pad_happy_drafter(workspace, checkpoints, **shape) -> Drafter:
    inner = workspace.denoisers.get(checkpoints["bert"])
    return Drafter(workspace.library, PadHappyDenoiser(inner, 64, **shape), workspace.drafts)


def test_a_model_that_proposes_padding_no_longer_empties_a_section(workspace, checkpoints):
    drafter = pad_happy_drafter(workspace, checkpoints, slope=0.25, offset=-10.0)

    def words(sub_block: int) -> list[int]:
        settings = DraftSettings.from_recipe(
            BERT_CHAT.recipe, model=checkpoints["bert"], sub_block=sub_block, passages=1
        )
        draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=0)
        list(drafter.run(draft))
        return [len(drafter.text(draft, i).split()) for i in range(len(HEADINGS))]

    assert max(words(0)) <= 2  # the whole canvas at once: padding first, the section empties
    assert min(words(32)) >= 10  # the recipe's sub-blocks: text before the padding


def test_a_section_never_ends_before_min_tokens_or_a_pin(workspace, checkpoints):
    drafter = pad_happy_drafter(workspace, checkpoints, slope=0.0, offset=6.0)  # padding first
    settings = DraftSettings.from_recipe(
        BERT_CHAT.recipe, model=checkpoints["bert"], min_tokens=12, passages=1
    )
    draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=0)
    list(drafter.run(draft))
    assert all(block.canvas.end == 12 for block in draft.blocks)
    block = draft.blocks[0]
    text = drafter.text(draft, 0)
    pin_selection(drafter.tokenizer, block, len(text) - 1, len(text))
    pinned = int(block.canvas.pinned.nonzero()[-1])
    draft.settings.min_tokens = 0
    drafter.rerun(draft, 0)
    list(drafter.run(draft, only=[0]))
    assert block.canvas.end == pinned + 1  # the section ends right after the pin, not before
    assert drafter.text(draft, 0).endswith(text[-1])


def test_an_end_token_mid_canvas_ends_the_section(checkpoints):
    denoiser = load_denoiser(checkpoints["bert"], device="cpu")
    tokenizer, pad, mask = denoiser.tokenizer, denoiser.pad_token_id, denoiser.mask_token_id
    words = tokenizer("Either party may terminate", add_special_tokens=False)["input_ids"]
    more = tokenizer("and more text after the end", add_special_tokens=False)["input_ids"]
    canvas = Canvas.from_tokens(words + [pad] + more + [mask] * 8, mask, end_ids=denoiser.end_ids)
    assert canvas.end == len(words) and canvas.finished and canvas.n_masked == 8
    assert window(canvas, 32) == (len(canvas), len(canvas))  # nothing left to decode
    assert canvas_text(tokenizer, canvas, show_masks=True) == "either party may terminate"
    marker = tokenizer("\n[/Answer]", add_special_tokens=False)["input_ids"]
    text_end = Canvas.from_tokens(words + marker + more, mask, end_ids=denoiser.end_ids)
    assert canvas_text(tokenizer, text_end, show_masks=False) == "either party may terminate"


@pytest.mark.parametrize("name", ["sdar", "fast_dllm_v2"])
def test_block_causal_families_draft_block_by_block_from_the_input_start(workspace, tmp_path, name):
    """SDAR and Fast-dLLM v2 load by their config through the block-causal denoiser and draft
    with their recipe; their sub-blocks are counted from the prompt's first token, as their
    blocks are, so every sub-block (and model block) is finished before the next is touched.
    (The tiny Fast-dLLM v2 has blocks of 4 against the published 32, so its sub-blocks of 8
    span two model blocks here.)"""
    if name == "sdar":
        from sdar_checkpoints import write_sdar_checkpoint as write
    else:
        from fast_dllm_v2_checkpoints import write_fast_dllm_v2_checkpoint as write
    from engine.block_causal import BlockCausalDenoiser

    folder = write(
        tmp_path / name, dtype=torch.float32, config_overrides={"max_position_embeddings": 1024}
    )
    drafter = workspace.drafter(str(folder))
    assert isinstance(drafter.denoiser, BlockCausalDenoiser)
    family = drafter.denoiser.family
    block = drafter.denoiser.block_size
    settings = DraftSettings.from_recipe(
        family.recipe, model=str(folder), block_tokens=20, passages=1, refresh_every=0
    )
    draft = drafter.start(INSTRUCTION, HEADINGS, settings, seed=0)
    list(drafter.run(draft))
    assert draft.settings.sub_block == family.recipe.sub_block
    for section in draft.blocks:
        origin, canvas = len(section.prompt), section.canvas
        steps = canvas.commit_step[: canvas.end]
        assert (steps > 0).all()
        windows = (torch.arange(canvas.end) + origin) // max(block, draft.settings.sub_block)
        for k in windows.unique()[:-1]:
            assert steps[windows == k].max() < steps[windows == k + 1].min()
