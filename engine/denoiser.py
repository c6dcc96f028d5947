"""Denoisers: the model side of masked diffusion.

A `Denoiser` is a tokenizer with a mask token plus one method, `logits(input_ids, attention_mask,
positions)`, which returns the logits only at the requested positions, so the LM head (a
[hidden x vocab] matmul, the largest single cost for short canvases) runs only where the sampler
needs it. It also carries its model family (engine/families.py): the recipe drafts start from,
and the ids that end a section.

Adapters, chosen by the family the checkpoint's config.json declares:
- `HFMaskedLMDenoiser`: any Hugging Face `AutoModelForMaskedLM` (BERT, RoBERTa, ModernBERT and the
  masked-diffusion chat models fine-tuned from them, e.g. dllm-hub/ModernBERT-large-chat-v0.1).
- `NativeDenoiser`: LLaDA, LLaDA-MoE and Dream through this project's own implementation of
  their architectures (engine/architectures/), which loads the published safetensors; their own
  modelling code does not run under transformers 5.
- `TrustRemoteCodeDenoiser`: any other masked-diffusion LM shipped with its own modelling code.

A model is named by a local folder or a hub id. Loading never hangs on the network: a folder is
read as it is; a hub id is taken from the local cache first, and only when `HF_HUB_OFFLINE` is
unset and a short probe reaches the hub is it downloaded. Any failure raises `ModelLoadError` with
one message that says how to provide a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from engine.config import disable_telemetry
from engine.context_cache import ModernBertContextCache
from engine.errors import PalimpsestError
from engine.families import (
    REMOTE_CODE,
    Family,
    UnknownFamily,
    family_of_config,
    read_config,
    special_ids,
)
from engine.model_budget import BudgetVerdict, check_budget, parameter_count, require_fits
from engine.model_loading import MODEL_LOADS

if TYPE_CHECKING:  # transformers is imported by the loaders: the app's first page need not wait
    from transformers import PreTrainedTokenizerBase

EXAMPLE_HUB_ID = "dllm-hub/ModernBERT-large-chat-v0.1"
HUB_PROBE_TIMEOUT_S = 5.0
_RESERVED = re.compile(r"^\[unused\d+\]$")  # BERT's reserved vocabulary slots: never text

T = TypeVar("T")


class ModelLoadError(PalimpsestError):
    """A model could not be loaded. The message says why and how to provide one."""


@runtime_checkable
class Denoiser(Protocol):
    tokenizer: PreTrainedTokenizerBase
    mask_token_id: int
    end_ids: tuple[int, ...]  # tokens that end a section's text
    pad_token_id: int
    family: Family
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


def looks_like_path(name: str) -> bool:
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
    if folder.exists() or looks_like_path(name):
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


def forbidden_token_ids(
    tokenizer: PreTrainedTokenizerBase,
    vocab_size: int,
    mask_token_id: int,
    end_ids: tuple[int, ...] = (),
) -> Tensor:
    """Ids the sampler must never propose: the mask, special tokens other than the ones that end
    a section, and logit rows past the tokenizer's vocabulary (models pad it for speed)."""
    specials = set(tokenizer.all_special_ids) - set(end_ids)
    unused = set(range(len(tokenizer), vocab_size))
    unused |= {i for token, i in tokenizer.get_vocab().items() if _RESERVED.match(token)}
    return torch.tensor(sorted((specials | {mask_token_id} | unused) - set(end_ids)))


# ---------------------------------------------------------------------------------------------
# Adapters


def _split_lm_head(model: nn.Module) -> tuple[nn.Module, Callable[[Tensor], Tensor]] | None:
    """Encoder body and LM head of the masked-LM classes whose layout is known (checked against
    transformers 5.23): the head maps hidden states [..., H] to logits [..., V]."""
    from transformers import ModernBertForMaskedLM

    if isinstance(model, ModernBertForMaskedLM):
        return model.model, lambda hidden: model.decoder(model.head(hidden))
    if hasattr(model, "bert") and hasattr(model, "cls"):  # BertForMaskedLM
        return model.bert, model.cls
    if hasattr(model, "roberta") and hasattr(model, "lm_head"):  # RoBERTa, XLM-R, CamemBERT
        return model.roberta, model.lm_head
    return None


class _FamilyIds:
    """Family, special ids and context limit, set once the tokenizer and config are known."""

    family: Family
    mask_token_id: int
    end_ids: tuple[int, ...]
    pad_token_id: int
    max_length: int

    def _take_ids(self, family: Family, config: dict, limits: list[int | None]) -> None:
        self.family = family
        try:
            ids = special_ids(family, config, self.tokenizer)
        except ValueError as error:
            raise load_error(self.name, str(error)) from error
        self.mask_token_id, self.end_ids, self.pad_token_id = ids.mask, ids.ends, ids.pad
        tokenizer_limit = self.tokenizer.model_max_length
        limits = [
            *limits,
            family.trained_context,
            tokenizer_limit if tokenizer_limit < 1e6 else None,
        ]
        self.max_length = min((limit for limit in limits if limit), default=512)


class HFMaskedLMDenoiser(_FamilyIds):
    """A Hugging Face masked LM (`AutoModelForMaskedLM`) from a model folder."""

    def __init__(
        self,
        folder: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        int8: bool = False,
        name: str | None = None,
    ) -> None:
        self.name = name or str(folder)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)
        folder = str(folder)
        from transformers import AutoModelForMaskedLM, ModernBertForMaskedLM

        self.tokenizer, self.model = _attempt(
            self.name,
            lambda: (
                masked_lm_tokenizer(folder),
                AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True, dtype=dtype),
            ),
        )
        self.model.to(self.device).eval()
        self.int8 = int8 and self.device.type == "cpu"
        if self.int8:
            quantize_linear_layers(self.model)
        config = self.model.config
        family = family_of_config(config.to_dict())
        self._take_ids(family, config.to_dict(), [_config_limit(config.to_dict())])
        self.vocab_size: int = config.vocab_size
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


class NativeDenoiser(_FamilyIds):
    """LLaDA, LLaDA-MoE or Dream through engine/architectures, from a folder laid out as the
    published checkpoints are (config.json, safetensors, tokenizer files)."""

    def __init__(
        self,
        folder: str | Path,
        family: Family,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or str(folder)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)
        self.int8 = False
        config = _read_config(self.name, Path(folder))
        if family.architecture == "dream":
            from engine.architectures.dream import load_dream as load_model
        else:
            from engine.architectures.llada import load_llada as load_model
        load_tokenizer = tokenizer_loader(self.name, family, config)
        self.tokenizer = _attempt(self.name, lambda: load_tokenizer(folder))
        self.model = _attempt(
            self.name, lambda: load_model(folder, dtype=dtype, device=self.device)
        )
        self._take_ids(family, config, [_config_limit(config)])
        self.vocab_size: int = int(config.get("embedding_size") or config["vocab_size"])
        self.context_cache = None

    @torch.inference_mode()
    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        return self.model.logits(
            input_ids.to(self.device), attention_mask.to(self.device), positions.to(self.device)
        )


class TrustRemoteCodeDenoiser(_FamilyIds):
    """Any other masked-diffusion LM with its own modelling code, loaded with
    `trust_remote_code=True` through `AutoModel`, whose forward returns `.logits` [B, L, V] with
    the logit at position i predicting token i. Verified here only on a small stand-in model."""

    def __init__(
        self,
        folder: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or str(folder)
        self.device = pick_device(device)
        dtype = dtype or _default_dtype(self.device)
        self.int8 = False
        folder = str(folder)
        kwargs = {"local_files_only": True, "trust_remote_code": True}
        from transformers import AutoModel

        self.tokenizer, self.model = _attempt(
            self.name,
            lambda: (
                remote_code_tokenizer(folder),
                AutoModel.from_pretrained(folder, dtype=dtype, **kwargs),
            ),
        )
        self.model.to(self.device).eval()
        config = self.model.config.to_dict()
        self._take_ids(REMOTE_CODE, config, [_config_limit(config)])
        self.vocab_size: int = self.model.config.vocab_size
        self.context_cache = None

    @torch.inference_mode()
    def logits(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor) -> Tensor:
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[positions.to(self.device)]


def masked_lm_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def remote_code_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=True)


def tokenizer_loader(
    name: str, family: Family, config: dict
) -> Callable[[str | Path], PreTrainedTokenizerBase]:
    """How the tokenizer of model `name` (of `family`) is loaded from its folder: the one
    function both the adapters and `load_tokenizer` use, so a draft read without its model is
    tokenized exactly as it was drafted."""
    if family.architecture == "block_causal":
        from engine.block_causal import block_causal_loaders

        return block_causal_loaders(name, config)[1]
    if family.architecture == "dream":
        from engine.architectures.dream import load_dream_tokenizer

        return load_dream_tokenizer
    if family.architecture == "llada":
        from engine.architectures.llada import load_llada_tokenizer

        return load_llada_tokenizer
    if family.architecture == "masked_lm":
        return masked_lm_tokenizer
    return remote_code_tokenizer


def quantize_linear_layers(model: nn.Module) -> None:
    """Dynamic int8 quantisation of every linear layer, in place (CPU only): weights stored as
    int8, activations quantised on the fly. On a 2-core CPU this is several times faster than
    fp32 matmuls; how far it moves the proposals is measured in bench/denoise.py."""
    import warnings

    with warnings.catch_warnings():  # torch announces the API's move to torchao
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def _config_limit(config: dict) -> int | None:
    """The model's position limit, under the names the families use."""
    names = ("max_position_embeddings", "max_sequence_length", "n_positions")
    return min((config[n] for n in names if config.get(n)), default=None)


def _read_config(name: str, folder: Path) -> dict:
    try:
        return read_config(folder)
    except (OSError, ValueError) as exc:
        raise load_error(name, f"its config.json is unreadable ({_one_line(exc)})") from exc


def model_folder(name: str | Path) -> Path:
    """The local folder of a model: the folder named, or the hub snapshot (cached, or downloaded
    when online). Only the files a model needs are fetched."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py", "*.jinja", "*.tiktoken"]

    def fetch(path: str, local_files_only: bool) -> Path:
        if Path(path).is_dir():
            return Path(path)
        return Path(
            snapshot_download(path, local_files_only=local_files_only, allow_patterns=patterns)
        )

    return load_pretrained(name, fetch)


def model_config(name: str | Path) -> dict:
    """A model's config.json alone (from its folder, the hub cache, or the hub), so its family
    and size are known before any weights are fetched or loaded."""
    from huggingface_hub import hf_hub_download

    def fetch(path: str, local_files_only: bool) -> Path:
        if Path(path).is_dir():
            return Path(path) / "config.json"
        return Path(hf_hub_download(path, "config.json", local_files_only=local_files_only))

    path = load_pretrained(name, fetch)
    return _read_config(str(name), path.parent)


def model_family(name: str, config: dict) -> Family:
    try:
        return family_of_config(config)
    except UnknownFamily as error:
        raise load_error(name, str(error)) from error


TYPICAL_SECTIONS = 3  # sections drafted together, for the time estimate
TYPICAL_SECTION_TOKENS = 128  # the references' answer length


def model_budget(
    config: dict, family: Family, device: str | torch.device | None = None, int8: bool = False
) -> BudgetVerdict | None:
    """Will the model fit this machine, and how long will a step take? Estimated from its config
    for a typical draft: three sections read with prompts as long as the context the family was
    tuned at (at most 1,024 tokens), the logits of one sub-block each. None when the config
    lacks the sizes to tell (loading then says what is wrong with it)."""
    device = pick_device(device)
    limits = [_config_limit(config), family.trained_context, 1024]
    context = min(limit for limit in limits if limit)
    dtype_bytes = 2 if device.type == "cuda" else (1 if int8 else 4)
    try:
        parameter_count(config)
    except (KeyError, ValueError, TypeError):
        return None
    return check_budget(
        config,
        device=device,
        dtype_bytes=dtype_bytes,
        batch_tokens=TYPICAL_SECTIONS * context,
        sequence_length=context,
        logit_tokens=TYPICAL_SECTIONS * (family.recipe.sub_block or TYPICAL_SECTION_TOKENS),
        tokens_per_section=TYPICAL_SECTION_TOKENS,
        tokens_per_step=family.recipe.tokens_per_step,
    )


def load_tokenizer(name: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer `load_denoiser(name)` gives its denoiser, without the model's weights: all
    that showing, pinning or editing a stored draft needs (seconds, where an 8B model takes
    minutes and gigabytes)."""
    name = str(name)
    config = model_config(name)
    load = tokenizer_loader(name, model_family(name, config), config)
    folder = model_folder(name)
    return _attempt(name, lambda: load(folder))


def load_denoiser(
    name: str | Path, device: str | torch.device | None = None, int8: bool = False
) -> Denoiser:
    """The adapter the model's family needs (from its config.json; int8 linear layers when asked,
    for masked LMs on a CPU), after checking that it fits this machine: one that cannot is
    refused with ModelTooLargeError before any weights are fetched. The verdict (with the time a
    step will take) is kept as `denoiser.budget`."""
    name = str(name)
    config = model_config(name)
    family = model_family(name, config)
    verdict = model_budget(config, family, device, int8)
    if verdict is not None:
        require_fits(verdict)
    folder = model_folder(name)
    with MODEL_LOADS:
        if family.architecture == "block_causal":
            from engine.block_causal import BlockCausalDenoiser

            denoiser = BlockCausalDenoiser(folder, family, device=device, name=name)
        elif family.architecture == "masked_lm":
            denoiser = HFMaskedLMDenoiser(folder, device=device, int8=int8, name=name)
        elif family.architecture in ("llada", "dream"):
            denoiser = NativeDenoiser(folder, family, device=device, name=name)
        else:
            denoiser = TrustRemoteCodeDenoiser(folder, device=device, name=name)
    denoiser.budget = verdict
    return denoiser
