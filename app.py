"""Start the Palimpsest web app: `python app.py [--port 7860] [--host H] [--library DIR]
[--auth USERS_FILE]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def setting(ours: str, gradios: str, default: str) -> str:
    """An environment setting: ours first, then the one every Gradio app honours."""
    return os.environ.get(ours) or os.environ.get(gradios) or default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Palimpsest web app")
    parser.add_argument(
        "--host",
        default=setting("PALIMPSEST_HOST", "GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1: this machine only; also "
        "$PALIMPSEST_HOST or $GRADIO_SERVER_NAME)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(setting("PALIMPSEST_PORT", "GRADIO_SERVER_PORT", "7860")),
        help="port (default 7860; also $PALIMPSEST_PORT or $GRADIO_SERVER_PORT)",
    )
    parser.add_argument(
        "--library",
        help="data folder (default: $PALIMPSEST_LIBRARY or the per-user data folder)",
    )
    parser.add_argument(
        "--auth",
        metavar="USERS_FILE",
        default=os.environ.get("PALIMPSEST_AUTH"),
        help="require sign-in with the accounts of this file (`palimpsest adduser`); each user "
        "then has their own library and drafts",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from engine.cli import quiet_model_loading
    from engine.config import Settings
    from engine.errors import PalimpsestError
    from engine.users import Users

    settings = Settings().with_library(args.library)
    try:
        users = Users(args.auth) if args.auth else None
    except PalimpsestError as error:
        sys.exit(f"error: {error}")
    if users is not None and not users.names():
        sys.exit(f"error: {args.auth} has no accounts: add one with `palimpsest adduser NAME`")
    if users is None and args.host not in LOOPBACK:
        print(
            f"warning: serving on {args.host} without --auth: anyone who can reach this address "
            "can read and change this library",
            file=sys.stderr,
        )
    # Files being uploaded wait in the data folder, not in a shared /tmp, until ingested.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(settings.library_dir) / "uploads"))

    from ui.boot import serve

    def build():
        """The app itself (Gradio, the engine, torch): imported and laid out while the address
        already answers with a starting page (ui/boot.py); the models then load in the
        background (engine/warmup.py)."""
        from engine.workspaces import Workspaces
        from ui.server import build_server

        workspaces = Workspaces(settings, per_user=users is not None)
        server = build_server(workspaces, users)
        workspaces.warm_up()
        return server

    quiet_model_loading()
    print(f"Library: {settings.library_dir}" + (" (one per user)" if users else ""), flush=True)
    serve(build, args.host, args.port)


if __name__ == "__main__":
    main()
