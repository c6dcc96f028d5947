"""Gradio's upload folder, kept empty of anything the library already has.

Gradio stores an upload at `<folder>/<content hash>/<name>`, so two requests uploading the same
file share one path: deleting a file as soon as one request has ingested it would pull it from
under the other. Files are therefore swept by age instead (after each upload, and all of them
when the app starts, when no request can be using one); the file routes that could serve them
are closed anyway (`ui.server`).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import gradio as gr

KEEP_S = 15 * 60  # longer than any one upload request takes to be ingested


def upload_folder() -> Path:
    return Path(gr.utils.get_upload_folder()).resolve()


def sweep_uploads(older_than_s: float = KEEP_S, folder: Path | None = None) -> int:
    """Delete uploaded files older than `older_than_s` (and folders left empty); how many."""
    folder = folder or upload_folder()
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # taken by a concurrent sweep, or in use
            if path.is_file() and path.stat().st_mtime <= cutoff:
                path.unlink()
                removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return removed
