"""Accounts for a shared deployment: a file of `name:scrypt-hash` lines, one per user.

Passwords are never stored, only salted scrypt hashes (stdlib `hashlib.scrypt`), and a check
compares in constant time. User names double as folder names (each user's library and drafts
live in `users/<name>` under the data folder), so they are restricted to a safe alphabet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import PalimpsestError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 8


class UserError(PalimpsestError):
    """A user name, password or users file that cannot be used."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name) or name.endswith("."):
        raise UserError(
            f"user name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    encode = base64.b64encode
    return (
        f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(digest).decode()}"
    )


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


class Users:
    """The accounts of one users file.

    After `MAX_FAILURES` wrong passwords in a row, a name is locked for `LOCKOUT_S` (every attempt
    meanwhile fails unchecked), so passwords cannot be guessed at the speed of scrypt.
    """

    MAX_FAILURES = 5
    LOCKOUT_S = 60.0

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self._hashes = self._read()
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # name -> (failures in a row, last)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        hashes = {}
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, stored = line.partition(":")
            if not stored.startswith("scrypt$"):
                raise UserError(
                    f"{self.path}:{number}: expected 'name:scrypt$…'; add users with "
                    "`palimpsest adduser NAME --users FILE`"
                )
            hashes[check_name(name)] = stored
        return hashes

    def names(self) -> list[str]:
        return sorted(self._hashes)

    def verify(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s; unknown names cost the same time as wrong passwords."""
        if self.locked(name):
            return False
        stored = self._hashes.get(name)
        matches = password_matches(password, stored or _DUMMY_HASH) and stored is not None
        with self._lock:
            if matches:
                self._failures.pop(name, None)
            else:
                count, _ = self._failures.get(name, (0, 0.0))
                self._failures[name] = (count + 1, self._clock())
        return matches

    def locked(self, name: str) -> bool:
        with self._lock:
            count, last = self._failures.get(name, (0, 0.0))
            if count < self.MAX_FAILURES:
                return False
            if self._clock() - last >= self.LOCKOUT_S:
                self._failures.pop(name, None)
                return False
            return True

    def set_password(self, name: str, password: str) -> None:
        """Add the user, or change their password, and rewrite the file (mode 0600)."""
        check_name(name)
        if len(password) < MIN_PASSWORD_CHARS:
            raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        self._hashes[name] = hash_password(password)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.writelines(f"{n}:{h}\n" for n, h in sorted(self._hashes.items()))
        os.replace(temporary, self.path)


_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)
