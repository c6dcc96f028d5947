"""Start the Palimpsest web app: `python app.py [--port 7860] [--host H] [--library DIR]`."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Palimpsest web app")
    parser.add_argument("--host", default=os.environ.get("PALIMPSEST_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PALIMPSEST_PORT", 7860)))
    parser.add_argument(
        "--library",
        help="library folder (default: $PALIMPSEST_LIBRARY or the per-user data folder)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from engine.cli import quiet_model_loading
    from engine.config import Settings
    from engine.workspace import Workspace
    from ui.app import CSS, build_app

    quiet_model_loading()
    settings = Settings().with_library(args.library)
    workspace = Workspace(settings)
    workspace.library.warm_up()
    print(f"Library: {settings.library_dir}", flush=True)
    app = build_app(workspace)
    app.queue(default_concurrency_limit=4)
    app.launch(server_name=args.host, server_port=args.port, css=CSS, show_error=False)


if __name__ == "__main__":
    main()
