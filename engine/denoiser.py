"""Denoisers: the model side of masked diffusion.

A `Denoiser` is a tokenizer with a mask token plus one method, `logits(input_ids, attention_mask,
positions)`, which returns the logits only at the requested positions, so the LM head (a
[hidden x vocab] matmul, the largest single cost for short canvases) runs only where the sampler
needs it.

Two adapters:
- `HFMaskedLMDenoiser`: any Hugging Face `AutoModelForMaskedLM` (BERT, RoBERTa, ModernBERT and the
  masked-diffusion chat models fine-tuned from them, e.g. dllm-hub/ModernBERT-large-chat-v0.1).
- `TrustRemoteCodeDenoiser`: large masked-diffusion LLMs shipped with their own modelling code
  (LLaDA-8B-Instruct, Dream-7B), for machines with a GPU.

A model is named by a local folder or a hub id. Loading never hangs on the network: a folder is
read with `local_files_only=True`; a hub id is tried from the local cache first, and only when
`HF_HUB_OFFLINE` is unset and a short probe reaches the hub is it downloaded. Any failure raises
`ModelLoadError` with one message that says how to provide a model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    ModernBertForMaskedLM,
    PreTrainedTokenizerBase,
)

from engine.config import disable_telemetry
from engine.context_cache import ModernBertContextCache
from engine.errors import PalimpsestError

EXAMPLE_HUB_ID = "dllm-hub/ModernBERT-large-chat-v0.1"
LLADA_MASK_TOKEN_ID = 126336  # <|mdm_mask|>
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>")
HUB_PROBE_TIMEOUT_S = 5.0
_RESERVED = re.compile(r"^\[unused\d+\]$")  # BERT's reserved vocabulary slots: never text

T = TypeVar("T")


class ModelLoadError(PalimpsestError):
    """A model could not be loaded. The message says why and how to provide one."""


@runtime_checkable
class Denoiser(Protocol):
    tokenizer: PreTrainedTokenizerBase
    mask_token_id: int
    max_length: int  # longest input (prompt + canvas) the model takes, in tokens
    vocab_size: int  # width of the logits; may exceed len(tokenizer)
    device: torch.device

    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        """Logits [N, V] at the N True entries of the bool mask `positions` [B, L], in row-major
        order (sequence by sequence, positions ascending)."""
        ...


# ---------------------------------------------------------------------------------------------
# Loading


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), read now: the app may set it after import, and
    huggingface_hub reads it only once, at import."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((flag or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_error(name: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"Cannot load the model {name!r}: {reason.rstrip('.')}. Provide a model either as a "
        f"Hugging Face hub id while online (for example {EXAMPLE_HUB_ID}; it is downloaded once, "
        "then works offline) or as a local folder holding config.json, the weights and the "
        "tokenizer files: --model /path/to/folder."
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _probe_hub(name: str) -> None:
    """Fail in seconds, not minutes, when the hub is unreachable or the id does not exist."""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(name, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as exc:
        raise load_error(
            name, f"the Hugging Face hub cannot provide it ({_one_line(exc)})"
        ) from exc


def load_pretrained(name: str | Path, load: Callable[[str, bool], T]) -> T:
    """Call `load(name_or_path, local_files_only)` the way that cannot hang on the network.

    `load` wraps the `from_pretrained` calls; every exception it raises becomes a ModelLoadError.
    """
    name = str(name)
    folder = Path(name).expanduser()
    if folder.exists() or _looks_like_path(name):
        if not folder.is_dir():
            raise load_error(name, "there is no such folder")
        if not (folder / "config.json").is_file():
            raise load_error(name, "the folder has no config.json, so it is not a model folder")
        return _attempt(name, lambda: load(str(folder), True))
    try:
        return load(name, True)  # already in the local cache: no network at all
    except Exception as exc:
        if hub_offline():
            reason = (
                "it is not a folder, and it is not in the local cache while HF_HUB_OFFLINE is set"
            )
            raise load_error(name, reason) from exc
    disable_telemetry()  # the hub request below must not report usage (or fetch agent lists)
    _probe_hub(name)
    return _attempt(name, lambda: load(name, False))


def _attempt(name: str, load: Callable[[], T]) -> T:
    try:
        return load()
    except Exception as exc:
        raise load_error(name, f"{type(exc).__name__}: {_one_line(exc)}") from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a GPU (half the memory, the precision these models were trained in);
    float32 on a CPU, where bfloat16 matmuls are often slower."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _max_length(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """The model's position limit (named differently by LLaDA); the tokenizer's only when it is
    not the huge "no limit" sentinel many tokenizers report."""
    config = model.config
    names = ("max_position_embeddings", "max_sequence_length", "n_positions")
    limits = [getattr(config, name, None) for name in names]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None)
    limits = [limit for limit in limits if limit]
    return min(limits) if limits else 512


# ---------------------------------------------------------------------------------------------
# Prompts and token ids


def bert_chat_prompt(system: str | None, user: str) -> str:
    """The prompt format of the BERT-chat checkpoints (dllm), which sets it in code, so the hub
    tokenizer may lack it: system and user turns, then the answer after a line `[Answer]`. The
    answer ends with `[/Answer]` and then padding, which `sampler.render` trims."""
    turns = [f"[SYS]\n{system.strip()}\n[/SYS]\n\n"] if system and system.strip() else []
    turns.append(f"[Question]\n{user.strip()}\n[/Question]\n\n[Answer]\n")
    return "".join(turns)


def build_prompt_ids(
    tokenizer: PreTrainedTokenizerBase, system: str | None, user: str
) -> list[int]:
    """Token ids of the prompt; the answer canvas goes right after them.

    Uses the tokenizer's chat template when it has one, else the BERT-chat format. Special tokens
    come only from the template, as in training (`apply_chat_template` encodes the same way).
    """
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = bert_chat_prompt(system, user)
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids a block may end with, which must stay proposable: EOS, padding (the BERT-chat models
    are fine-tuned to fill the answer's tail with it after `[/Answer]`) and the end-of-turn tokens
    of LLaDA (`<|eot_id|>`) and Dream (`<|im_end|>`)."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    ids += [vocab.get(token) for token in END_OF_TURN_TOKENS]
    return {i for i in ids if i is not None}


def forbidden_token_ids(
    tokenizer: PreTrainedTokenizerBase, vocab_size: int, mask_token_id: int
) -> Tensor:
    """Ids the sampler must never propose: the mask, special tokens other than the stop tokens,
    and logit rows past the tokenizer's vocabulary (models pad the vocabulary for speed)."""
    specials = set(tokenizer.all_special_ids) - stop_token_ids(tokenizer)
    unused = set(range(len(tokenizer), vocab_size))
    unused |= {i for token, i in tokenizer.get_vocab().items() if _RESERVED.match(token)}
    return torch.tensor(sorted(specials | {mask_token_id} | unused), dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Adapters


def _split_lm_head(model: nn.Module) -> tuple[nn.Module, Callable[[Tensor], Tensor]] | None:
    """Encoder body and LM head of the masked-LM classes whose layout is known (checked against
    transformers 5.23): the head maps hidden states [..., H] to logits [..., V]."""
    if isinstance(model, ModernBertForMaskedLM):
        return model.model, lambda hidden: model.decoder(model.head(hidden))
    if hasattr(model, "bert") and hasattr(model, "cls"):  # BertForMaskedLM
        return model.bert, model.cls
    if hasattr(model, "roberta") and hasattr(model, "lm_head"):  # RoBERTa, XLM-R, CamemBERT
        return model.roberta, model.lm_head
    return None


class HFMaskedLMDenoiser:
    """A Hugging Face masked LM (`AutoModelForMaskedLM`) from a hub id or a local folder."""

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        int8: bool = False,
    ) -> None:
        self.name = str(name_or_path)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)

        def load(path: str, local_files_only: bool):
            model = AutoModelForMaskedLM.from_pretrained(
                path, local_files_only=local_files_only, dtype=dtype
            )
            return AutoTokenizer.from_pretrained(path, local_files_only=local_files_only), model

        self.tokenizer, self.model = load_pretrained(self.name, load)
        if self.tokenizer.mask_token_id is None:
            raise load_error(self.name, "its tokenizer has no mask token")
        self.model.to(self.device).eval()
        self.int8 = int8 and self.device.type == "cpu"
        if self.int8:
            quantize_linear_layers(self.model)
        self.mask_token_id: int = self.tokenizer.mask_token_id
        self.max_length = _max_length(self.model, self.tokenizer)
        self.vocab_size: int = self.model.config.vocab_size
        self._split = _split_lm_head(self.model)
        self.context_cache = (
            ModernBertContextCache(self.model)
            if isinstance(self.model, ModernBertForMaskedLM)
            else None
        )

    @torch.inference_mode()
    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        positions = positions.to(self.device)
        if self._split is None:  # unknown layout: full logits, then select
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[positions]
        body, head = self._split
        hidden = body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return head(hidden[positions])


class TrustRemoteCodeDenoiser:
    """A masked-diffusion LLM with its own modelling code, loaded with `trust_remote_code=True`
    through `AutoModel`, whose forward returns `.logits` [B, L, V].

    Verified here: only the structure, against a small stand-in model with remote code (the
    tests), and the conventions below, read from the published sampling code. Not verified: the
    real checkpoints (no weights or GPU on the build machine), and whether their remote code
    still imports under transformers 5.x; a failure there surfaces as ModelLoadError.

    Conventions:
    - LLaDA-8B-Instruct (model_type "llada"): mask id 126336 `<|mdm_mask|>`, which its tokenizer
      does not declare as mask token; logits at position i predict token i.
    - Dream-7B (model_type "Dream"): mask token `<|mask|>` from its tokenizer; logits are shifted
      one to the right (position i is predicted at i - 1, as in the autoregressive model it was
      initialised from); with padding, its forward takes a 4D bool attention mask and position
      ids.
    The full [B, L, V] logits are computed and then indexed: these heads are not split off.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        mask_token_id: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.name = str(name_or_path)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)

        def load(path: str, local_files_only: bool):
            kwargs = {"local_files_only": local_files_only, "trust_remote_code": True}
            model = AutoModel.from_pretrained(path, dtype=dtype, **kwargs)
            return AutoTokenizer.from_pretrained(path, **kwargs), model

        self.tokenizer, self.model = load_pretrained(self.name, load)
        self.model.to(self.device).eval()
        model_type = getattr(self.model.config, "model_type", "")
        self.is_dream = model_type.lower() == "dream"
        default_mask = LLADA_MASK_TOKEN_ID if model_type == "llada" else None
        candidates = (mask_token_id, self.tokenizer.mask_token_id, default_mask)
        mask = next((m for m in candidates if m is not None), None)
        if mask is None:
            raise load_error(self.name, "no mask token id is known for it; pass mask_token_id")
        self.mask_token_id: int = mask
        self.max_length = _max_length(self.model, self.tokenizer)
        self.vocab_size: int = self.model.config.vocab_size

    @torch.inference_mode()
    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        if not self.is_dream:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        else:
            logits = self._dream_forward(input_ids, attention_mask)
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits[positions.to(self.device)]

    def _dream_forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Dream's forward(input_ids, attention_mask, position_ids): "full" when nothing is
        padded, else a [B, 1, L, L] bool mask and positions that skip the padding."""
        if bool(attention_mask.all()):
            return self.model(input_ids, "full", None).logits
        keep = attention_mask.bool()
        pair_mask = (keep[:, None, :, None] & keep[:, None, None, :]).contiguous()
        position_ids = (keep.long().cumsum(-1) - 1).clamp_min(0)
        return self.model(input_ids, pair_mask, position_ids).logits


REMOTE_CODE_FAMILIES = ("llada", "dream")  # hub ids of these load through their own code


def quantize_linear_layers(model: nn.Module) -> None:
    """Dynamic int8 quantisation of every linear layer, in place (CPU only): weights stored as
    int8, activations quantised on the fly. On a 2-core CPU this is several times faster than
    fp32 matmuls; how far it moves the proposals is measured in bench/denoise.py."""
    import warnings

    with warnings.catch_warnings():  # torch announces the API's move to torchao
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def load_denoiser(
    name: str | Path, device: str | torch.device | None = None, int8: bool = False
) -> Denoiser:
    """The adapter a model needs: its own code (a local config with `auto_map`, or a LLaDA or
    Dream hub id), else the masked-LM adapter (int8 linear layers when asked, on a CPU)."""
    config = Path(str(name)).expanduser() / "config.json"
    if config.is_file():
        try:
            remote = "auto_map" in json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise load_error(
                str(name), f"its config.json is unreadable ({_one_line(exc)})"
            ) from exc
    else:
        remote = any(family in str(name).lower() for family in REMOTE_CODE_FAMILIES)
    if remote:
        return TrustRemoteCodeDenoiser(name, device=device)
    return HFMaskedLMDenoiser(name, device=device, int8=int8)
