"""The lexical index of a library, saved next to its catalog so a process opens it, not rebuilds it.

The catalog's `generation` changes with every commit that changes the set of ready chunks, so
an index saved under the generation it was built from is current exactly while the catalog
still has that generation (and the same library id and fingerprint of its ready documents,
which are checked too). Each index is written whole into a temporary folder, which is then
renamed to `lexical/<generation>`: a process killed at any moment leaves either no index for a
generation or a whole one, never a half-written one. At open, a current saved index is
memory-mapped; otherwise the index is rebuilt from SQLite once and saved (replacing one that
did not match), and older generations are removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from engine.catalog import Catalog, ReadyVersion
from engine.lexical import LexicalIndex
from engine.processes import process_alive

MANIFEST_FILE = "manifest.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadyIndex:
    """The lexical index of the ready chunks at one catalog generation, with each row's
    document as runs of (doc_id, number of consecutive rows)."""

    version: ReadyVersion
    lexical: LexicalIndex
    doc_runs: list[tuple[str, int]]

    @property
    def generation(self) -> int:
        return self.version.generation

    def rows_by_doc(self) -> dict[str, np.ndarray]:
        rows: dict[str, list[np.ndarray]] = {}
        start = 0
        for doc_id, count in self.doc_runs:
            rows.setdefault(doc_id, []).append(np.arange(start, start + count, dtype=np.int64))
            start += count
        return {doc_id: np.concatenate(parts) for doc_id, parts in rows.items()}


class LexicalStore:
    """The saved lexical indexes of one library, in `folder`, each under its generation."""

    def __init__(self, folder: Path, catalog: Catalog):
        self.folder = folder
        self.catalog = catalog
        self.library_id = catalog.library_id()

    def open(self) -> ReadyIndex:
        """The index of the catalog's ready chunks: the saved one when current, else rebuilt
        (and saved)."""
        version = self.catalog.ready_version()
        folder = self.folder / str(version.generation)
        if not folder.is_dir():
            return self.rebuild()
        started = time.perf_counter()
        try:
            index = self._load(folder, version)
        except (OSError, ValueError, KeyError, TypeError) as error:
            # A folder under a final name was whole when renamed there: one that does not load
            # is damaged or another library's, and would keep the rebuilt one out of its place.
            log.warning("lexical index %s not usable (%s): rebuilding it", folder, error)
            shutil.rmtree(folder, ignore_errors=True)
            return self.rebuild()
        log.info(
            "lexical index: opened generation %d (%d chunks) in %.0f ms",
            version.generation,
            len(index.lexical),
            1000 * (time.perf_counter() - started),
        )
        return index

    def rebuild(self) -> ReadyIndex:
        """Build the index from SQLite, save it, and remove the older saved ones."""
        started = time.perf_counter()
        version, chunks = self.catalog.ready_chunks_with_version()
        lexical = LexicalIndex.build([c.chunk_id for c in chunks], [c.text for c in chunks])
        runs = [(doc_id, len(list(group))) for doc_id, group in groupby(c.doc_id for c in chunks)]
        index = ReadyIndex(version, lexical, runs)
        self._save(index)
        log.info(
            "lexical index: rebuilt generation %d (%d chunks) in %.0f ms",
            version.generation,
            len(chunks),
            1000 * (time.perf_counter() - started),
        )
        return index

    def _load(self, folder: Path, version: ReadyVersion) -> ReadyIndex:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        saved_for = (manifest["library"], manifest["generation"], manifest["fingerprint"])
        if saved_for != (self.library_id, version.generation, version.fingerprint):
            raise ValueError(f"{folder} was saved for another library or set of documents")
        lexical = LexicalIndex.load(folder)
        runs = [(doc_id, int(count)) for doc_id, count in manifest["doc_runs"]]
        if sum(count for _, count in runs) != len(lexical):
            raise ValueError(f"{folder} has rows of unknown documents")
        return ReadyIndex(version, lexical, runs)

    def _save(self, index: ReadyIndex) -> None:
        """Write the index whole under a temporary name, then rename it into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{os.getpid()}.", dir=self.folder))
        try:
            index.lexical.save(staged)
            manifest = {
                "library": self.library_id,
                "generation": index.generation,
                "fingerprint": index.version.fingerprint,
                "doc_runs": index.doc_runs,
            }
            (staged / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
            os.rename(staged, self.folder / str(index.generation))
        except OSError as error:  # another process saved this generation first; a full disk
            log.info("lexical index for generation %d not saved (%s)", index.generation, error)
            shutil.rmtree(staged, ignore_errors=True)
        self._sweep(index.generation)

    def _sweep(self, generation: int) -> None:
        """Remove the indexes of older generations and what dead processes left half-written.

        A process still reading an older index keeps its memory-mapped files (unlinking them
        does not unmap them); one that is about to open it finds it gone and rebuilds.
        """
        for entry in self.folder.iterdir():
            if entry.name.startswith("."):
                pid = entry.name.split(".")[1]
                stale = not pid.isdigit() or not process_alive(int(pid))
            else:
                stale = not entry.name.isdigit() or int(entry.name) < generation
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
