"""Denoisers loaded once per process and shared by every workspace (and so every user).

The "demo" model is a tiny randomly initialised masked LM built on first use in `models_dir`,
so the whole drafting interaction can be tried without a checkpoint (its text is meaningless).
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.denoiser import Denoiser, load_denoiser

DEMO_MODEL = "demo"


class Denoisers:
    def __init__(self, models_dir: Path):
        self.models_dir = models_dir
        self._loaded: dict[tuple[str, bool], Denoiser] = {}
        self._lock = threading.Lock()

    def get(self, model: str, int8: bool = False) -> Denoiser:
        """The denoiser for `model` (hub id, folder, or "demo"), loaded once per precision."""
        with self._lock:
            if (model, int8) not in self._loaded:
                self._loaded[model, int8] = load_denoiser(self._path(model), int8=int8)
            return self._loaded[model, int8]

    def loaded(self, model: str, int8: bool = False) -> bool:
        with self._lock:
            return (model, int8) in self._loaded

    def _path(self, model: str) -> str:
        if model != DEMO_MODEL:
            return model
        folder = self.models_dir / "demo-tiny-bert"
        if not (folder / "config.json").is_file():
            from engine.testmodels import build_tiny_bert

            build_tiny_bert(folder)
        return str(folder)
