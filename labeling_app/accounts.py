"""Rater accounts: names, scrypt password hashes and the admin flag, in one small SQLite file.

Accounts are shared by every run a rater labels, so they live outside run directories: by
default in ~/.config/t2i-align/raters.db, or wherever T2I_ALIGN_RATERS points.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labeling_app.errors import LabelingError
from labeling_app.passwords import hash_password, verify_password

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # whole name: fullmatch (a `$` lets a final newline in)
MIN_PASSWORD_LENGTH = 8


@functools.cache
def _unknown_account_hash() -> str:
    return hash_password(secrets.token_hex(16))


def default_accounts_path() -> Path:
    configured = os.environ.get("T2I_ALIGN_RATERS")
    if configured:
        return Path(configured)
    return Path.home() / ".config" / "t2i-align" / "raters.db"


@dataclass(frozen=True)
class Rater:
    name: str
    admin: bool
    created_at: str


class Accounts:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS raters ("
                " name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,"
                " admin INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)"
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise LabelingError(f"rater accounts file {self.path} is not a readable SQLite database ({exc})") from None
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, name: str, password: str, admin: bool = False) -> None:
        if not _NAME.fullmatch(name):
            raise LabelingError(
                f"rater name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise LabelingError(f"the password for {name} must have at least {MIN_PASSWORD_LENGTH} characters")
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO raters (name, password_hash, admin, created_at) VALUES (?, ?, ?, ?)",
                    (name, hash_password(password), int(admin), created),
                )
            except sqlite3.IntegrityError:
                raise LabelingError(f"rater {name} already exists") from None

    def remove(self, name: str) -> None:
        """Remove the account; ratings it gave stay in every labels.db."""
        with self._transaction() as db:
            if db.execute("DELETE FROM raters WHERE name = ?", (name,)).rowcount == 0:
                raise LabelingError(f"there is no rater named {name}")

    def set_admin(self, name: str, admin: bool) -> None:
        with self._transaction() as db:
            if db.execute("UPDATE raters SET admin = ? WHERE name = ?", (int(admin), name)).rowcount == 0:
                raise LabelingError(f"there is no rater named {name}")

    def list(self) -> list[Rater]:
        with self._transaction() as db:
            rows = db.execute("SELECT name, admin, created_at FROM raters ORDER BY name").fetchall()
        return [Rater(name, bool(admin), created) for name, admin, created in rows]

    def verify(self, name: str, password: str) -> bool:
        """The same work for every name: an unknown one is checked against a hash of nothing, so the
        time a failed login takes does not tell whether the account exists."""
        with self._transaction() as db:
            row = db.execute("SELECT password_hash FROM raters WHERE name = ?", (name,)).fetchone()
        matches = verify_password(password, row[0] if row else _unknown_account_hash())
        return row is not None and matches

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise LabelingError(f"the password for {name} must have at least {MIN_PASSWORD_LENGTH} characters")
        with self._transaction() as db:
            if db.execute("UPDATE raters SET password_hash = ? WHERE name = ?", (hash_password(password), name)).rowcount == 0:
                raise LabelingError(f"there is no rater named {name}")

    def fingerprint(self, name: str) -> tuple | None:
        """What a login session depends on: the password (its salted hash) and the admin flag; None once removed."""
        with self._transaction() as db:
            return db.execute("SELECT password_hash, admin FROM raters WHERE name = ?", (name,)).fetchone()

    def is_admin(self, name: str | None) -> bool:
        with self._transaction() as db:
            row = db.execute("SELECT admin FROM raters WHERE name = ?", (name,)).fetchone()
        return bool(row and row[0])
