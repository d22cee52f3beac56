"""The label store: one SQLite file (WAL) per run, RUN_DIR/labels.db. Every rating is written here.

Humans (through the Gradio app) and simulated raters use the same calls: `next_sample` leases
a sample to a rater, `rate` commits a thumbs up / down, `skip` gives a sample back to the pool
for others, `undo_last` retracts the rater's latest rating. Undone ratings stay in the table
(marked `undone_at`) so nothing a rater clicked is ever lost.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labeling_app.errors import LabelingError
from labeling_app.run_dir import Sample, image_problem, read_samples, resolve_run_dir

SCHEMA_VERSION = 1
# Order is the keyboard order in the app (keys 1, 2, ...); a new tag goes at the end of its kind.
REASONS = ("wrong count", "wrong shape", "wrong colour", "wrong background", "malformed")
RATER_KINDS = ("human", "simulated")
STORE_TABLES = ("meta", "samples", "ratings", "skips", "leases")
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_MAX_LEASES = 4  # per rater: the sample on screen and the preloaded one, in two tabs

log = logging.getLogger(__name__)

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    category TEXT NOT NULL,
    split TEXT NOT NULL,
    seed INTEGER NOT NULL,
    model TEXT NOT NULL,
    image_path TEXT NOT NULL,
    broken TEXT  -- why the sample cannot be shown, NULL when it can
);
CREATE TABLE ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL REFERENCES samples(id),
    rater TEXT NOT NULL,
    rater_kind TEXT NOT NULL CHECK (rater_kind IN ('human', 'simulated')),
    label INTEGER NOT NULL CHECK (label IN (0, 1)),
    reasons TEXT NOT NULL DEFAULT '[]',  -- JSON list of REASONS
    created_at TEXT NOT NULL,  -- ISO 8601, UTC
    undone_at TEXT
);
CREATE UNIQUE INDEX one_live_rating_per_rater ON ratings (sample_id, rater) WHERE undone_at IS NULL;
CREATE INDEX ratings_by_rater ON ratings (rater, id);
CREATE TABLE skips (
    sample_id TEXT NOT NULL REFERENCES samples(id),
    rater TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (sample_id, rater)
);
CREATE TABLE leases (
    sample_id TEXT NOT NULL REFERENCES samples(id),
    rater TEXT NOT NULL,
    expires_at REAL NOT NULL,  -- unix seconds
    PRIMARY KEY (sample_id, rater)
);
PRAGMA user_version = {SCHEMA_VERSION};
"""

# The first sample (in run order) this rater has not rated, skipped or leased, with a free slot:
# live ratings plus other raters' unexpired leases stay below the overlap.
_ASSIGN = """
SELECT s.id FROM samples AS s
WHERE s.broken IS NULL
  AND NOT EXISTS (SELECT 1 FROM ratings AS r WHERE r.sample_id = s.id AND r.rater = :rater AND r.undone_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM skips AS k WHERE k.sample_id = s.id AND k.rater = :rater)
  AND NOT EXISTS (SELECT 1 FROM leases AS l WHERE l.sample_id = s.id AND l.rater = :rater)
  AND (SELECT COUNT(*) FROM ratings AS r WHERE r.sample_id = s.id AND r.undone_at IS NULL)
    + (SELECT COUNT(*) FROM leases AS l WHERE l.sample_id = s.id) < :overlap
ORDER BY s.position
LIMIT 1
"""


class RatingRefused(Exception):
    """A rating that cannot be stored as asked (already rated, or the sample has enough ratings)."""


class StoreUnwritable(LabelingError):
    """labels.db cannot be written just now (a read-only file, folder or disk): nothing was saved."""


@dataclass(frozen=True)
class Rating:
    id: int
    sample_id: str
    rater: str
    label: int
    reasons: tuple[str, ...]
    created_at: str


@dataclass(frozen=True)
class Progress:
    mine_today: int
    run_total: int
    remaining: int


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class LabelStore:
    """labels.db of one run dir. Safe to share between threads and processes."""

    def __init__(self, run_dir: Path, overlap: int | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 max_leases: int = DEFAULT_MAX_LEASES, read_only: bool = False, clock=time.time):
        if max_leases < 1:
            raise LabelingError(f"a rater must be able to hold at least one lease, got max leases {max_leases}")
        if not (math.isfinite(lease_seconds) and lease_seconds > 0):
            raise LabelingError(f"a lease must last a positive number of seconds, got {lease_seconds}")
        if overlap is not None and overlap < 1:
            raise LabelingError(f"overlap must be at least 1, got {overlap}")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "labels.db"
        self.lease_seconds, self.max_leases, self.read_only = lease_seconds, max_leases, read_only
        self.clock = clock  # unix seconds; lease expiry is the only use
        self._local = threading.local()
        self._check_existing()
        if not read_only:
            with self._write() as db:
                if db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'meta'").fetchone()[0] == 0:
                    for statement in _SCHEMA.split(";"):
                        db.execute(statement)
                if overlap is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('overlap', ?)", (str(overlap),))
        row = self._db().execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()
        self.overlap = int(row[0]) if row else 1

    # -- connections -------------------------------------------------------------------------

    def _check_existing(self) -> None:
        """Refuse, without writing a byte, a labels.db this code cannot use as it is."""
        if not self.path.exists():
            return
        if self.path.stat().st_size == 0:
            raise LabelingError(f"{self.path} is empty (0 bytes), not a labels database; it was left untouched:"
                                " restore it from a backup, or move it aside to start a new one")
        self._check_wal()
        try:
            db = sqlite3.connect(self._read_only_uri(), uri=True)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                damage = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            finally:
                db.close()
        except sqlite3.OperationalError as exc:  # unreadable, not corrupt: say why, and do not invite deleting it
            raise LabelingError(self._unreadable(exc)) from None
        except sqlite3.DatabaseError:
            raise LabelingError(f"{self.path} is not an SQLite database; it was left untouched:"
                                " restore it from a backup, or move it aside to start a new one") from None
        if not tables:
            # A labels.db copied without its -wal file looks like this: its tables were still in the WAL.
            raise LabelingError(f"{self.path} holds no tables (copied without its {self.path.name}-wal file?);"
                                " it was left untouched: copy the -wal file beside it, or move it aside to start anew")
        if damage != "ok":
            damage = " ".join(damage.replace("*** in database main ***", "").split())
            raise LabelingError(f"{self.path} is damaged ({damage}); it was left untouched: restore it from a backup,"
                                f" or recover what it still holds with `sqlite3 {self.path} .recover`")
        if version != SCHEMA_VERSION:
            raise LabelingError(
                f"{self.path} has schema version {version} but this t2i-align reads version {SCHEMA_VERSION};"
                " it was left untouched"
            )
        missing = [name for name in STORE_TABLES if name not in tables]
        if missing:
            raise LabelingError(f"{self.path} lacks the table(s) {', '.join(missing)}, so it is not a labels database"
                                " t2i-align wrote, or it was cut short; it was left untouched: restore it from a backup,"
                                " or move it aside to start a new one")

    def _unreadable(self, exc: sqlite3.OperationalError) -> str:
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and not os.access(self.run_dir, os.W_OK):
            return (f"cannot read {self.path}: its {wal.name} file holds ratings not yet folded into it, and SQLite can"
                    f" only read them by writing a {self.path.name}-shm file beside it, but the folder {self.run_dir}"
                    " is read-only; make the folder writable, or copy labels.db together with its -wal file to a"
                    " writable folder and read the copy")
        return f"cannot read {self.path}: {exc}"

    def _check_wal(self) -> None:
        """Warn about a -wal file SQLite would ignore (and later overwrite); when opening for writing, keep a copy."""
        wal = self.path.with_name(self.path.name + "-wal")
        if not wal.is_file() or wal.stat().st_size == 0:
            return
        problem = wal_problem(wal, page_size=_page_size(self.path))
        if problem is None:
            return
        if self.read_only:
            log.warning("%s cannot be read with %s (%s); SQLite ignores it", wal, self.path.name, problem)
            return
        kept = wal.with_name(f"{wal.name}.unreadable-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
        shutil.copy2(wal, kept)
        log.warning("%s cannot be read with %s (%s); SQLite will ignore and then overwrite it, so a copy was kept"
                    " as %s", wal, self.path.name, problem, kept.name)

    def _read_only_uri(self) -> str:
        """A read-only connection's address. Without a -wal file no connection is open anywhere (SQLite keeps
        it while one is), so the file is read as immutable: no -wal or -shm file is created, nothing on disk
        changes. With one, SQLite reads through it as usual."""
        wal = self.path.with_name(self.path.name + "-wal")
        return f"file:{urllib.parse.quote(str(self.path))}?mode=ro" + ("" if wal.exists() else "&immutable=1")

    def _write_problem(self) -> str | None:
        """Why labels.db cannot be written now, or None: the file itself, or the folder its new files go in.
        Asked with access(2), never by opening the file: closing any descriptor of it would drop the
        POSIX locks that this process's SQLite connections hold on it."""
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return f"{self.path.name} is read-only"
        companions = [self.path, self.path.with_name(self.path.name + "-wal")]
        if any(not f.exists() for f in companions) and not os.access(self.run_dir, os.W_OK):
            return f"the folder {self.run_dir} is read-only"
        return None

    def _unwritable(self, reason: object) -> StoreUnwritable:
        return StoreUnwritable(f"cannot write to {self.path} ({reason}): nothing was saved and the ratings in it"
                               " are safe; make the run directory and its labels.db writable")

    def _db(self, write: bool = False) -> sqlite3.Connection:
        """This thread's connection. One opened while labels.db could not be written serves reads only and
        is replaced as soon as a write finds the file writable again, so the server recovers by itself."""
        cached = getattr(self._local, "db", None)
        if cached is not None and (cached[1] or not write):
            return cached[0]
        problem = "opened read-only" if self.read_only else self._write_problem()
        if write and problem:
            raise self._unwritable(problem)
        self._forget_connection()
        if problem:
            db = sqlite3.connect(self._read_only_uri(), uri=True, timeout=30, isolation_level=None,
                                 check_same_thread=False)
        else:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in _write).
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                db.close()
                raise self._unwritable(exc) from None
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge it
        db.execute("PRAGMA foreign_keys=ON")
        self._local.db = (db, problem is None)
        return db

    def close(self) -> None:
        """Close this thread's connection now rather than whenever the store is collected: the last writable
        connection to close folds the WAL into labels.db and removes the -wal and -shm files."""
        self._forget_connection()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _forget_connection(self) -> None:
        cached = getattr(self._local, "db", None)
        self._local.db = None
        if cached is not None:
            try:
                cached[0].close()
            except sqlite3.Error:
                pass

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front so checks and writes cannot interleave.
        A failure of the disk or its permissions drops the connection (the next call opens a fresh one) and
        raises StoreUnwritable: nothing of the transaction was committed."""
        db = self._db(write=True)
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._forget_connection()
            raise self._unwritable(exc) from None
        try:
            yield db
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._forget_connection()  # closing a connection rolls back what it had not committed
            raise self._unwritable(exc) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- samples -----------------------------------------------------------------------------

    def sync_samples(self, samples: list[Sample], problems: dict[str, str]) -> None:
        """Bring the samples table in line with samples.parquet; `problems` maps sample id to why it can't be shown."""
        listed = {s.id for s in samples}
        with self._write() as db:
            for position, s in enumerate(samples):
                db.execute(
                    "INSERT INTO samples (id, position, prompt, category, split, seed, model, image_path, broken)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET position = excluded.position, prompt = excluded.prompt,"
                    " category = excluded.category, split = excluded.split, seed = excluded.seed,"
                    " model = excluded.model, image_path = excluded.image_path, broken = excluded.broken",
                    (s.id, position, s.prompt, s.category, s.split, s.seed, s.model, s.image_path, problems.get(s.id)),
                )
            # Samples gone from samples.parquet keep their rows (and ratings) but are no longer handed out.
            for (sample_id,) in db.execute("SELECT id FROM samples").fetchall():
                if sample_id not in listed:
                    db.execute(
                        "UPDATE samples SET broken = 'no longer listed in samples.parquet' WHERE id = ?", (sample_id,)
                    )

    def mark_broken(self, sample_id: str, problem: str) -> None:
        with self._write() as db:
            db.execute("UPDATE samples SET broken = ? WHERE id = ?", (problem, sample_id))
            db.execute("DELETE FROM leases WHERE sample_id = ?", (sample_id,))

    def sample(self, sample_id: str) -> Sample:
        row = self._db().execute(
            "SELECT id, prompt, category, split, seed, model, image_path FROM samples WHERE id = ?", (sample_id,)
        ).fetchone()
        if row is None:
            raise LabelingError(f"there is no sample {sample_id!r} in {self.path}")
        return Sample(*row)

    # -- the rating loop ---------------------------------------------------------------------

    def next_sample(self, rater: str) -> str | None:
        """Lease the next sample for `rater`, or None when nothing is left for them. A rater holds at
        most `max_leases`: a new lease releases their oldest, so no one can hoard the run."""
        now = self.clock()
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
            row = db.execute(_ASSIGN, {"rater": rater, "overlap": self.overlap}).fetchone()
            if row is None:
                return None
            self._keep_newest_leases(db, rater, self.max_leases - 1)
            db.execute("INSERT INTO leases VALUES (?, ?, ?)", (row[0], rater, now + self.lease_seconds))
            return row[0]

    def _keep_newest_leases(self, db: sqlite3.Connection, rater: str, keep: int) -> None:
        """Release the rater's oldest leases beyond `keep`: whatever path leases, the cap holds."""
        db.execute(
            "DELETE FROM leases WHERE rater = :rater AND sample_id IN (SELECT sample_id FROM leases"
            " WHERE rater = :rater ORDER BY expires_at DESC LIMIT -1 OFFSET :keep)",
            {"rater": rater, "keep": keep},
        )

    def release(self, rater: str, sample_ids: Iterable[str | None] | None = None, keep: Iterable[str] = ()) -> None:
        """Give leased samples back to the pool: the named ones (None entries are no sample), or, when
        `sample_ids` is None, all of the rater's leases but those in `keep`."""
        with self._write() as db:
            if sample_ids is None:
                kept = sorted(set(keep))
                db.execute(f"DELETE FROM leases WHERE rater = ? AND sample_id NOT IN ({', '.join('?' * len(kept))})",
                           (rater, *kept))
                return
            ids = [i for i in sample_ids if i is not None]
            for sample_id in ids:
                db.execute("DELETE FROM leases WHERE rater = ? AND sample_id = ?", (rater, sample_id))

    def rate(
        self, rater: str, sample_id: str, label: int, reasons: Iterable[str] = (), kind: str = "human"
    ) -> Rating:
        """Commit one rating; when this returns, the rating is on disk."""
        reasons = tuple(dict.fromkeys(reasons))  # a tag ticked twice counts once
        if label not in (0, 1):
            raise LabelingError(f"a label is 1 (thumbs up) or 0 (thumbs down), got {label!r}")
        unknown = [r for r in reasons if r not in REASONS]
        if unknown:
            raise LabelingError(f"unknown reason tag {unknown[0]!r}; known tags are {', '.join(REASONS)}")
        if reasons and label == 1:
            raise LabelingError("reason tags explain a thumbs down, not a thumbs up")
        if kind not in RATER_KINDS:
            raise LabelingError(f"rater kind must be one of {', '.join(RATER_KINDS)}, got {kind!r}")
        created = utc_now()
        with self._write() as db:
            sample = db.execute("SELECT broken FROM samples WHERE id = ?", (sample_id,)).fetchone()
            if sample is None:
                raise LabelingError(f"there is no sample {sample_id!r} in {self.path}")
            if sample[0] is not None:
                raise RatingRefused(f"sample {sample_id} cannot be rated: {sample[0]}")
            mine = db.execute(
                "SELECT 1 FROM ratings WHERE sample_id = ? AND rater = ? AND undone_at IS NULL", (sample_id, rater)
            ).fetchone()
            if mine:
                raise RatingRefused(f"you have already rated sample {sample_id}")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM ratings WHERE sample_id = ? AND undone_at IS NULL", (sample_id,)
            ).fetchone()
            if count >= self.overlap:
                raise RatingRefused(f"sample {sample_id} already has the {self.overlap} rating(s) it needs")
            (held_by_others,) = db.execute(
                "SELECT COUNT(*) FROM leases WHERE sample_id = ? AND rater != ? AND expires_at > ?",
                (sample_id, rater, self.clock()),
            ).fetchone()
            leased_to_rater = db.execute(
                "SELECT 1 FROM leases WHERE sample_id = ? AND rater = ?", (sample_id, rater)
            ).fetchone()
            if not leased_to_rater and count + held_by_others >= self.overlap:
                raise RatingRefused(f"sample {sample_id} is being rated by another rater")
            cursor = db.execute(
                "INSERT INTO ratings (sample_id, rater, rater_kind, label, reasons, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (sample_id, rater, kind, label, json.dumps(list(reasons)), created),
            )
            db.execute("DELETE FROM leases WHERE sample_id = ? AND rater = ?", (sample_id, rater))
        return Rating(cursor.lastrowid, sample_id, rater, label, reasons, created)

    def skip(self, rater: str, sample_id: str) -> None:
        """The rater will not see this sample again; its slot goes back to the pool for others."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO skips VALUES (?, ?, ?)", (sample_id, rater, utc_now()))
            db.execute("DELETE FROM leases WHERE sample_id = ? AND rater = ?", (sample_id, rater))

    def undo_last(self, rater: str) -> Rating | None:
        """Retract the rater's latest live rating and lease its sample back to them to rate again."""
        with self._write() as db:
            row = db.execute(
                "SELECT id, sample_id, label, reasons, created_at FROM ratings"
                " WHERE rater = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                (rater,),
            ).fetchone()
            if row is None:
                return None
            rating_id, sample_id, label, reasons, created = row
            db.execute("UPDATE ratings SET undone_at = ? WHERE id = ?", (utc_now(), rating_id))
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (sample_id, rater, self.clock() + self.lease_seconds)
            )
            self._keep_newest_leases(db, rater, self.max_leases)
        return Rating(rating_id, sample_id, rater, label, tuple(json.loads(reasons)), created)

    # -- reading -----------------------------------------------------------------------------

    def progress(self, rater: str) -> Progress:
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight.astimezone(timezone.utc).isoformat(timespec="microseconds")
        db = self._db()
        (mine,) = db.execute(
            "SELECT COUNT(*) FROM ratings WHERE rater = ? AND undone_at IS NULL AND created_at >= ?", (rater, since)
        ).fetchone()
        (total,) = db.execute("SELECT COUNT(*) FROM ratings WHERE undone_at IS NULL").fetchone()
        (remaining,) = db.execute(
            "SELECT COALESCE(SUM(MAX(0, ? - COALESCE(n, 0))), 0) FROM samples"
            " LEFT JOIN (SELECT sample_id, COUNT(*) AS n FROM ratings WHERE undone_at IS NULL GROUP BY sample_id)"
            " ON sample_id = id WHERE broken IS NULL",
            (self.overlap,),
        ).fetchone()
        return Progress(mine, total, remaining)

    def live_ratings(self) -> list[dict]:
        """Every rating not undone, joined with its sample, oldest first."""
        cursor = self._db().execute(
            "SELECT r.id AS rating_id, r.sample_id, s.prompt, s.category, s.split, s.image_path, s.model, s.seed,"
            " r.rater, r.rater_kind, r.label, r.reasons, r.created_at"
            " FROM ratings AS r JOIN samples AS s ON s.id = r.sample_id"
            " WHERE r.undone_at IS NULL ORDER BY r.id"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        for row in rows:
            row["reasons"] = json.loads(row["reasons"])
        return rows

    def sample_ids(self) -> list[str]:
        """The samples that can be shown, in run order."""
        return [i for (i,) in self._db().execute("SELECT id FROM samples WHERE broken IS NULL ORDER BY position")]

    def broken_samples(self) -> dict[str, str]:
        return dict(self._db().execute("SELECT id, broken FROM samples WHERE broken IS NOT NULL").fetchall())


def open_run_store(
    run_dir: str | Path, overlap: int | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS,
    max_leases: int = DEFAULT_MAX_LEASES,
) -> LabelStore:
    """Check the run dir, open (or create) its labels.db and register its samples; unreadable images are logged and left out."""
    path = resolve_run_dir(run_dir)
    samples = read_samples(path)
    store = LabelStore(path, overlap=overlap, lease_seconds=lease_seconds, max_leases=max_leases)
    problems = {}
    for sample in samples:
        problem = image_problem(path, sample)
        if problem:
            log.warning("sample %s is left out: %s", sample.id, problem)
            problems[sample.id] = problem
    store.sync_samples(samples, problems)
    if len(problems) == len(samples):
        raise LabelingError(f"none of the {len(samples)} images in {path} can be read, so there is nothing to label")
    return store


def _page_size(path: Path) -> int:
    """The page size written in an SQLite file's header (bytes 16-17; 1 means 65536)."""
    with path.open("rb") as f:
        header = f.read(18)
    size = struct.unpack(">H", header[16:18])[0] if len(header) == 18 else 0
    return 65536 if size == 1 else size


def wal_problem(wal: Path, page_size: int) -> str | None:
    """Why SQLite would not read this write-ahead log with a database of `page_size`, or None when it would:
    its 32-byte header must carry the magic number, format 3007000, the page size and a valid checksum."""
    with wal.open("rb") as f:
        header = f.read(32)
    if len(header) < 32:
        return f"{len(header)} bytes, shorter than a WAL header"
    magic, version, wal_page_size = struct.unpack(">III", header[:12])
    if magic not in (0x377F0682, 0x377F0683):
        return "no WAL magic number"
    if version != 3007000:
        return f"WAL format {version}"
    if wal_page_size != page_size:
        return f"page size {wal_page_size}, the database's is {page_size}"
    # The checksum runs over the first 24 bytes as 32-bit words, big-endian when the magic's low bit is set.
    words = struct.unpack((">" if magic & 1 else "<") + "6I", header[:24])
    s0 = s1 = 0
    for x0, x1 in zip(words[::2], words[1::2]):
        s0 = (s0 + x0 + s1) & 0xFFFFFFFF
        s1 = (s1 + x1 + s0) & 0xFFFFFFFF
    if (s0, s1) != struct.unpack(">II", header[24:32]):
        return "header checksum does not match"
    return None
