"""Short-lived SQLite connections, as the library catalog and the draft store both use them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import PalimpsestError


class LibraryBusyError(PalimpsestError):
    """A library database is locked by another process for longer than we wait."""


@contextmanager
def connection(
    path: Path, timeout_s: float, synchronous: str = "NORMAL"
) -> Iterator[sqlite3.Connection]:
    """One connection per operation (safe across threads), in WAL mode, committed on success.

    `synchronous="FULL"` makes each commit durable through a power cut, not only a crash.
    """
    db = sqlite3.connect(path, timeout=timeout_s)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        with db:
            yield db
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise LibraryBusyError(
                f"the library at {path.parent} is busy (locked by another process); "
                "try again in a moment"
            ) from error
        raise
    finally:
        db.close()
