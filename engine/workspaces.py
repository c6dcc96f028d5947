"""Whose workspace a request works on: one shared workspace, or one per signed-in user.

Without accounts the data folder is the workspace, as the CLI sees it. With accounts each user
gets `users/<name>/` under the data folder (their own library, Chroma collection and drafts),
and nothing of one user is reachable from another's workspace. The embedding model and the
denoisers are loaded once and shared: they hold no user data.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.config import Settings
from engine.embeddings import Embedder
from engine.errors import PalimpsestError
from engine.models import Denoisers
from engine.users import check_name
from engine.warmup import Warmup
from engine.workspace import Workspace


class NotSignedInError(PalimpsestError):
    """A per-user deployment got a request without a user."""


class Workspaces:
    def __init__(self, settings: Settings, per_user: bool, embedder: Embedder | None = None):
        self.settings = settings
        self.per_user = per_user
        self.embedder = embedder or Embedder(settings.embedding_model)
        self.denoisers = Denoisers.for_settings(settings)
        self._open: dict[str | None, Workspace] = {}
        self._lock = threading.Lock()
        self.warmup: Warmup | None = None  # set by `warm_up`

    def warm_up(self) -> Warmup:
        """Start loading the embedding model and the default drafting model in the background
        (the web app serves its first page meanwhile); `self.warmup` says how far it is."""
        model = self.settings.model
        self.warmup = Warmup(
            [
                ("the embedding model", lambda: self.embedder.model),
                (f"the drafting model {model}", lambda: self.denoisers.preload(model)),
            ]
        ).start()
        return self.warmup

    def folder(self, user: str | None) -> Path:
        if not self.per_user:
            return self.settings.library_dir
        if not user:
            raise NotSignedInError("sign in first")
        return self.settings.library_dir / "users" / check_name(user)

    def get(self, user: str | None) -> Workspace:
        """The workspace of `user` (ignored without accounts), opened on first use."""
        key = user if self.per_user else None
        folder = self.folder(key)
        with self._lock:
            if key not in self._open:
                settings = self.settings.with_library(folder)
                self._open[key] = Workspace(settings, self.embedder, self.denoisers)
            return self._open[key]
