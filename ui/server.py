"""The HTTP server around the Gradio app: sign-in, per-user downloads, and closed file routes.

Gradio's own file routes serve any file in its upload and cache folders to anyone signed in, so
they are closed here: the app never needs them (page images are inlined, uploads are swept) and
nothing a user uploads or exports can be fetched by another user's request.
Exports go through `/download/<draft id>.<md|docx>`, which exports from the requesting user's
own store, so a draft id of another user is simply not found.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask
from starlette.routing import Mount

from engine.errors import PalimpsestError
from engine.users import Users
from engine.workspaces import Workspaces
from ui.app import CSS, build_app
from ui.sessions import Sessions
from ui.uploads import sweep_uploads, upload_folder

CLOSED_ROUTES = re.compile(r"^/(gradio_api/)?(file[=/]|proxy=)")
MEDIA_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def file_stem(title: str, limit: int = 60) -> str:
    """A file name for a draft's title: its words, each run of other characters one space
    ("Draft the clauses." gives "Draft the clauses", not "Draft the clauses_")."""
    return re.sub(r"[^\w\-]+", " ", title).strip()[:limit].strip()


def signed_in_user(gradio_app: FastAPI, request: Request) -> str | None:
    """The user Gradio's sign-in cookie names, if any (the same lookup as Gradio's `/user`)."""
    cookie_id = gradio_app.cookie_id  # type: ignore[attr-defined]
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        user = gradio_app.tokens.get(request.cookies.get(name))  # type: ignore[attr-defined]
        if user:
            return user
    return None


def build_server(workspaces: Workspaces, users: Users | None) -> FastAPI:
    """The Gradio app mounted at `/` of a FastAPI app that adds `/download` and closes file
    routes; with `users`, everything (downloads included) needs a signed-in user."""
    if upload_folder().is_relative_to(workspaces.settings.library_dir.resolve()):
        sweep_uploads(older_than_s=0)  # the app's own folder, and no request is in flight yet
    sessions = Sessions(workspaces)
    blocks = build_app(sessions)
    blocks.queue(default_concurrency_limit=4)
    server = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    mounted: list[FastAPI] = []

    @server.middleware("http")
    async def close_file_routes(request: Request, call_next):
        if CLOSED_ROUTES.match(request.url.path):
            return PlainTextResponse("Not found", status_code=404)
        return await call_next(request)

    @server.get("/ready")
    def ready() -> JSONResponse:
        """Whether the models have loaded (engine/warmup.py): 200 once ready, 503 before."""
        warmup = workspaces.warmup
        if warmup is None:
            return JSONResponse({"ready": True, "message": "Models load on first use."})
        state = warmup.state()
        return JSONResponse(state.to_json(), status_code=200 if state.ready else 503)

    @server.get("/download/{draft_id}.{fmt}")
    def download(draft_id: str, fmt: str, request: Request, style: str | None = None) -> Response:
        user = signed_in_user(mounted[0], request)
        if users is not None and user is None:
            return PlainTextResponse("Sign in first.", status_code=401)
        if fmt not in MEDIA_TYPES:
            return PlainTextResponse("Choose .md or .docx.", status_code=404)
        workspace = workspaces.get(user)
        folder = Path(tempfile.mkdtemp(prefix="palimpsest-export-"))
        cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
        try:
            title = workspace.drafts.load(draft_id).title
            name = f"{file_stem(title) or draft_id}.{fmt}"
            path = workspace.export(draft_id, fmt, folder / name, style)
        except PalimpsestError as error:
            shutil.rmtree(folder, ignore_errors=True)
            return PlainTextResponse(str(error), status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=name, background=cleanup)

    gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=users.verify if users is not None else None,
        auth_message="Sign in to your Palimpsest library." if users is not None else None,
        run_history=False,  # Gradio would otherwise keep every run's inputs and outputs
        footer_links=["api", "settings"],
        show_error=False,
        css=CSS,
    )
    mounted += [route.app for route in server.routes if isinstance(route, Mount)]
    return server
