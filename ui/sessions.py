"""From a Gradio request to the signed-in user's workspace and run registry.

Every handler resolves its workspace from the request (never from a module or closure variable),
so one user's events can only ever read and write that user's library and drafts, whether they
come from the page or from Gradio's HTTP API.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import gradio as gr

from engine.workspace import Workspace
from engine.workspaces import Workspaces
from ui.runs import RunRegistry


@dataclass(frozen=True)
class Session:
    workspace: Workspace
    runs: RunRegistry


class Sessions:
    def __init__(self, workspaces: Workspaces):
        self.workspaces = workspaces
        self._runs: dict[str | None, RunRegistry] = {}
        self._lock = threading.Lock()

    def __call__(self, request: gr.Request | None) -> Session:
        user = getattr(request, "username", None) if self.workspaces.per_user else None
        workspace = self.workspaces.get(user)
        with self._lock:
            runs = self._runs.setdefault(user, RunRegistry())
        return Session(workspace, runs)

    @property
    def default_model(self) -> str:
        return self.workspaces.settings.model
