"""What the denoiser reads for one block: instruction, heading, evidence and neighbours.

Evidence is ordered with the strongest passages at both ends (1, 3, 5, ..., 4, 2), to counter the
"lost in the middle" effect, and trimmed evenly so the prompt plus the block's canvas fit the
model's context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.denoiser import build_prompt_ids
from engine.draft import DraftError
from engine.search_hit import SearchHit

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SYSTEM = (
    "You draft one section of a legal or academic document. Write only the text of the section, "
    "in the register of the sources, and state nothing the sources do not support."
)


def edges_first(items: list) -> list:
    """Best-first items rearranged so the best sit at both ends: [1, 3, 5, ..., 6, 4, 2]."""
    return items[0::2] + items[1::2][::-1]


def _clip(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that is at most `max_tokens` tokens."""
    if max_tokens <= 0:
        return ""
    # verbose=False: passages longer than the model's limit are expected here, before clipping
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
        "offset_mapping"
    ]
    if len(offsets) <= max_tokens:
        return text
    return text[: offsets[max_tokens - 1][1]].rstrip() + " …"


def user_turn(
    instruction: str,
    heading: str,
    passages: list[tuple[SearchHit, str]],
    before: str,
    after: str,
) -> str:
    lines = [f"Task: {instruction}", f"Section to write: {heading}"]
    if passages:
        lines.append("Sources:")
        lines += [f"[{h.filename}, p. {h.page_label}] {text}" for h, text in passages]
    if before:
        lines.append(f"The previous section ends: …{before}")
    if after:
        lines.append(f"The next section begins: {after}…")
    return "\n".join(lines)


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    instruction: str,
    heading: str,
    evidence: list[SearchHit],
    before: str = "",
    after: str = "",
) -> list[int]:
    """Token ids of a block's prompt, at most `max_prompt_tokens` long (the canvas follows)."""
    ordered = edges_first(evidence)
    frame = build_prompt_ids(tokenizer, SYSTEM, user_turn(instruction, heading, [], before, after))
    if len(frame) > max_prompt_tokens:
        raise DraftError(
            f"the instruction and heading take {len(frame)} tokens, but the model reads only "
            f"{max_prompt_tokens} besides the section itself: shorten them"
        )
    per_passage = (max_prompt_tokens - len(frame)) // max(len(ordered), 1)
    while True:  # shrink the passages until the whole prompt fits: labels cost tokens too
        passages = [(h, _clip(tokenizer, " ".join(h.text.split()), per_passage)) for h in ordered]
        passages = [(hit, text) for hit, text in passages if text]
        ids = build_prompt_ids(
            tokenizer, SYSTEM, user_turn(instruction, heading, passages, before, after)
        )
        overflow = len(ids) - max_prompt_tokens
        if overflow <= 0:
            return ids
        per_passage -= overflow // max(len(passages), 1) + 1
