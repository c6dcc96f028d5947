"""Denoisers loaded once per process and shared by every workspace (and so every user).

The "demo" model is a tiny randomly initialised masked LM built on first use in `models_dir`,
so the whole drafting interaction can be tried without a checkpoint (its text is meaningless).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from engine.config import Settings
from engine.denoiser import (
    Denoiser,
    load_denoiser,
    load_tokenizer,
    looks_like_path,
    model_budget,
)
from engine.families import BERT_CHAT, Family, family_of_config
from engine.model_budget import BudgetVerdict
from engine.model_loading import MODEL_LOADS
from engine.step_batcher import StepBatcher
from engine.warmup import Deferred

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEMO_MODEL = "demo"
T = TypeVar("T")


class Denoisers:
    """`batch_rows`: when set, each denoiser is wrapped in a `StepBatcher` with that row cap, so
    the steps of drafts running at once share forward passes (opt-in: see engine/step_batcher.py
    for what it costs in exactness)."""

    def __init__(self, models_dir: Path, batch_rows: int | None = None):
        self.models_dir = models_dir
        self.batch_rows = batch_rows
        self._loaded: dict[tuple[str, bool], Denoiser] = {}
        self._tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        self._lock = threading.Lock()  # guards the dicts; never held while a model loads
        self._turns: dict[tuple[str, object], threading.Lock] = {}  # one per thing to load

    @classmethod
    def for_settings(cls, settings: Settings) -> Denoisers:
        """The denoisers of a library folder, batched when `settings.batch_drafts` asks."""
        batch_rows = settings.batch_rows if settings.batch_drafts else None
        return cls(settings.library_dir / "models", batch_rows)

    def get(self, model: str, int8: bool = False) -> Denoiser:
        """The denoiser for `model` (hub id, folder, or "demo"), loaded once per precision."""

        def load() -> Denoiser:
            denoiser = load_denoiser(self._path(model), int8=int8)
            if self.batch_rows is not None:
                denoiser = StepBatcher(denoiser, self.batch_rows)
            return denoiser

        return self._once("denoiser", self._loaded, (model, int8), load)

    def tokenizer(self, model: str) -> PreTrainedTokenizerBase:
        """The tokenizer of `model`: a loaded denoiser's, else loaded alone (and kept), so that
        reading or editing a draft never waits for the model's weights, even while they load."""
        denoiser = self._loaded_as(model)
        if denoiser is not None:
            return denoiser.tokenizer
        return self._once(
            "tokenizer", self._tokenizers, model, lambda: load_tokenizer(self._path(model))
        )

    def _once(self, kind: str, loaded: dict, key: object, load: Callable[[], T]) -> T:
        """`loaded[key]`, loaded by `load` once: a second caller waits for the first one's load,
        callers of other keys (and `loaded`, `family`) do not."""
        with self._lock:
            if key in loaded:
                return loaded[key]
            turn = self._turns.setdefault((kind, key), threading.Lock())
        with turn:
            with self._lock:
                if key in loaded:
                    return loaded[key]
            value = load()
            with self._lock:
                loaded[key] = value
            return value

    def preload(self, model: str) -> Denoiser:
        """`get`, for a model at hand: "demo", a folder, or a hub id already in the local cache.
        A hub id that would have to be downloaded raises `Deferred` instead: starting the app
        never touches the network; the first draft with that model downloads it."""
        folder = Path(model).expanduser()
        at_hand = model == DEMO_MODEL or folder.exists() or looks_like_path(model)
        if not at_hand and _config_at_hand(model) is None:
            raise Deferred(f"{model} is not downloaded yet: the first draft with it fetches it")
        return self.get(model)

    def family(self, model: str) -> Family | None:
        """The family of `model` without loading it: from the loaded denoiser, the folder's
        config.json, or the hub cache's; None when no config is at hand (a hub id not yet
        downloaded)."""
        denoiser = self._loaded_as(model)
        if denoiser is not None:
            return denoiser.family
        if model == DEMO_MODEL:
            return BERT_CHAT
        config = _config_at_hand(model)
        try:
            return family_of_config(config) if config is not None else None
        except ValueError:
            return None

    def budget(self, model: str, int8: bool = False) -> BudgetVerdict | None:
        """Whether `model` fits this machine and how slow a step will be, estimated from its
        config before loading; None when no config is at hand or its family is unknown."""
        config = _config_at_hand(self._path(model) if model == DEMO_MODEL else model)
        family = self.family(model)
        if config is None or family is None:
            return None
        return model_budget(config, family, int8=int8)  # None: the config lacks sizes

    def loaded(self, model: str, int8: bool = False) -> bool:
        with self._lock:
            return (model, int8) in self._loaded

    def _loaded_as(self, model: str) -> Denoiser | None:
        """`model` loaded at either precision, if it is."""
        with self._lock:
            return next((d for (name, _), d in self._loaded.items() if name == model), None)

    def _path(self, model: str) -> str:
        if model != DEMO_MODEL:
            return model
        folder = self.models_dir / "demo-tiny-bert"
        if not (folder / "config.json").is_file():  # built once: asking never waits on a load
            with MODEL_LOADS:  # building a model ties its weights, which a load may switch off
                if not (folder / "config.json").is_file():
                    _build_demo(folder)
        return str(folder)


def _build_demo(folder: Path) -> None:
    """The demo model, built beside `folder` and renamed into place: a reader never sees a
    config.json whose weights or tokenizer are still being written, and a build killed half-way
    leaves nothing that looks like a model."""
    from engine.testmodels import build_tiny_bert

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build_tiny_bert(partial)
    shutil.rmtree(folder, ignore_errors=True)  # what an older, in-place build left half-way
    partial.rename(folder)


def _config_at_hand(model: str) -> dict | None:
    """config.json of a model folder, or of a hub id already in the local cache; never fetched."""
    config = Path(model).expanduser() / "config.json"
    if not config.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(model, "config.json")
        except ValueError:  # not a valid hub id
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError):
        return None
