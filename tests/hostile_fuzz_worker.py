"""Parse-and-chunk worker for the fuzz test in test_hostile_input.py, run as a subprocess.

The test process cannot interrupt a parser stuck in C (PDFium) or in a pure-Python loop, but it
can kill a child process. So the PDF-to-chunks path runs here: the parent writes frames of
`4-byte big-endian length + PDF bytes` to stdin and reads one JSON line per frame from stdout:

- `{"status": "ok", "pages": [[label, text], ...], "chunks": [[page_index, start, end, text]]}`
- `{"status": "refused", "type": ..., "message": ...}`: the engine's own PalimpsestError
- `{"status": "bug", "type": ..., "traceback": ...}`: any other exception

The worker ends when stdin closes. The parent applies the per-example time limit.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.chunking import chunk_pages  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.documents import parse_pdf  # noqa: E402
from engine.embeddings import Embedder  # noqa: E402
from engine.errors import PalimpsestError  # noqa: E402

MAX_PAGES = 50  # fuzzed files are small; a mutated /Count must not make one slow on purpose


def handle(data: bytes, token_offsets) -> dict:
    try:
        parsed = parse_pdf(data, filename="fuzz.pdf", max_pages=MAX_PAGES)
        chunks = chunk_pages(parsed.doc_id, parsed.pages, token_offsets)
    except PalimpsestError as error:
        return {"status": "refused", "type": type(error).__name__, "message": str(error)}
    except Exception as error:
        return {"status": "bug", "type": type(error).__name__, "traceback": traceback.format_exc()}
    return {
        "status": "ok",
        "pages": [[page.page_label, page.text] for page in parsed.pages],
        "chunks": [[c.page_index, c.char_start, c.char_end, c.text] for c in chunks],
    }


def main() -> None:
    token_offsets = Embedder(Settings().embedding_model).token_offsets
    source, sink = sys.stdin.buffer, sys.stdout
    sink.write('{"status": "ready"}\n')
    sink.flush()
    while True:
        header = source.read(4)
        if len(header) < 4:
            return
        data = source.read(int.from_bytes(header, "big"))  # may be b"": an empty file
        # ensure_ascii: lone surrogates in a result must reach the parent, not crash the dump
        sink.write(json.dumps(handle(data, token_offsets), ensure_ascii=True) + "\n")
        sink.flush()


if __name__ == "__main__":
    main()
