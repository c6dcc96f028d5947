"""Answering from the first second while the web app is built.

Importing Gradio and torch and laying out the page take seconds (5 on a quiet 2-core machine, 15
on a busy one), and until uvicorn listens a person who opens the address gets "connection
refused". `Booting` is what uvicorn serves from its first moment: it builds the real app on a
thread, answers meanwhile with a page that says so and reloads itself (status 503, so health
checks and scripts keep waiting, and `/ready` as JSON), then runs the real app's lifespan and
hands every request to it. A build that fails is printed and stops the server.

Only uvicorn is imported here, so the process listens as soon as Python and uvicorn have started.
"""

from __future__ import annotations

import asyncio
import html
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STARTING = "Starting Palimpsest: loading the interface…"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="1">
<title>Palimpsest: starting</title></head>
<body style="font-family: system-ui, sans-serif; margin: 4rem auto; max-width: 36rem">
<h1>Palimpsest</h1><p id="starting">{message}</p><p>This page opens the app once it is ready.</p>
</body></html>
"""


class Booting:
    """An ASGI app standing in for the one `build` returns, until it is built."""

    def __init__(self, build: Callable[[], ASGIApp], stop: Callable[[], None]):
        self._build = build
        self._stop = stop  # asks the server to exit (a build that failed)
        self._app: ASGIApp | None = None
        self._inner_lifespan: _Lifespan | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            await _starting(scope, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # "try again later"

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Listen at once; the real app's own startup runs when it is built, its shutdown here."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.create_task(self._build_then_start(scope.get("state")))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._inner_lifespan is not None:
                    await self._inner_lifespan.shut_down()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _build_then_start(self, state: dict | None) -> None:
        try:
            app = await asyncio.to_thread(self._build)
            lifespan = _Lifespan(app, state)
            await lifespan.start()
        except Exception:
            print("Palimpsest could not start:", file=sys.stderr)
            traceback.print_exc()
            self._stop()
            return
        self._inner_lifespan = lifespan
        self._app = app


async def _starting(scope: Scope, send: Send) -> None:
    if scope["path"].rstrip("/") == "/ready":
        body = json.dumps({"ready": False, "message": STARTING}).encode()
        media_type = b"application/json"
    else:
        body = PAGE.format(message=html.escape(STARTING)).encode()
        media_type = b"text/html; charset=utf-8"
    headers = [
        (b"content-type", media_type),
        (b"cache-control", b"no-store"),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Lifespan:
    """The ASGI lifespan protocol, driven from this side, for an app started after the server."""

    def __init__(self, app: ASGIApp, state: dict | None):
        self._to_app: asyncio.Queue[dict] = asyncio.Queue()
        self._from_app: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
        if state is not None:  # the server copies this into every request's scope
            scope["state"] = state
        self._task = asyncio.create_task(app(scope, self._to_app.get, self._from_app.put))

    async def start(self) -> None:
        await self._exchange("lifespan.startup")

    async def shut_down(self) -> None:
        await self._exchange("lifespan.shutdown")

    async def _exchange(self, asked: str) -> None:
        await self._to_app.put({"type": asked})
        answer = asyncio.create_task(self._from_app.get())
        await asyncio.wait({answer, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():  # the app returned without answering: it has no lifespan
            answer.cancel()
            self._task.result()  # re-raises what it raised, if anything
            return
        reply = answer.result()
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"{asked} failed: {reply.get('message', '')}")


def serve(build: Callable[[], ASGIApp], host: str, port: int) -> None:
    """Listen on `host:port` at once and serve the app `build` returns once it is built; exit
    with status 1 if it cannot be built."""
    import uvicorn

    # Open event streams would hold a graceful shutdown (Ctrl-C) for as long as a page is open.
    config = uvicorn.Config(
        None, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    failed = []

    def stop() -> None:
        failed.append(True)
        server.should_exit = True

    config.app = Booting(build, stop)
    print(f"Palimpsest is serving on http://{host}:{port}/", flush=True)
    server.run()
    if failed:
        sys.exit(1)
