"""labels.parquet: one row per live rating (skips and undone ratings are not exported), across run dirs."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from labeling_app.errors import LabelingError
from labeling_app.store import LabelStore

LABELS_SCHEMA = pa.schema(
    [
        ("rating_id", pa.int64()),
        ("sample_id", pa.string()),
        ("run_dir", pa.string()),
        ("prompt", pa.string()),
        ("category", pa.string()),
        ("split", pa.string()),
        ("image_path", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int64()),
        ("rater", pa.string()),
        ("rater_kind", pa.string()),
        ("label", pa.int64()),
        ("reasons", pa.list_(pa.string())),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def open_existing_store(run_dir: str | Path) -> LabelStore:
    """The labels.db of a run that has been rated, opened read-only: never creates or changes one."""
    path = Path(run_dir).expanduser().resolve()
    if not path.is_dir():
        raise LabelingError(f"run directory {run_dir} does not exist")
    if not (path / "labels.db").is_file():
        raise LabelingError(f"run directory {run_dir} has no labels.db yet; rate it with `t2i-align label` or `simulate-raters`")
    return LabelStore(path, read_only=True)


def labels_table(stores: Sequence[LabelStore]) -> pa.Table:
    rows = []
    for store in stores:
        run_dir = store.run_dir.resolve()
        for r in store.live_ratings():
            rows.append(
                {
                    **r,
                    "run_dir": str(run_dir),
                    "image_path": str(run_dir / r["image_path"]),
                    "created_at": datetime.fromisoformat(r["created_at"]),
                }
            )
    return pa.Table.from_pylist(rows, schema=LABELS_SCHEMA)


def write_labels(stores: Sequence[LabelStore], out: str | Path) -> int:
    """Write labels.parquet atomically (a half-written file never replaces a good one), with the permissions
    the user's umask gives a new file; returns the row count. Replaces only a regular file: never a link,
    a device, a FIFO or a socket."""
    table = labels_table(stores)
    if table.num_rows == 0:
        names = ", ".join(str(s.run_dir) for s in stores)
        raise LabelingError(f"there are no ratings to export in {names}")
    out = Path(out)
    _refuse_special(out)
    if out.is_dir():
        raise LabelingError(f"{out} is a folder; name the parquet file to write, e.g. {out / 'labels.parquet'}")
    blocking = next((folder for folder in out.parents if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise LabelingError(f"cannot write {out}: {blocking} is a file, not a folder")
    partial = out.with_name(f".{out.name}.{secrets.token_hex(8)}.partial")  # one per call
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never through a file or link already there; mode 0o666 less the umask, as any new file.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise LabelingError(f"cannot write {out} ({exc.strerror or exc})") from None
    try:
        pq.write_table(table, partial)
        _refuse_special(out)  # checked again just before the swap
        os.replace(partial, out)
    except OSError as exc:
        raise LabelingError(f"cannot write {out} ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    return table.num_rows


def _refuse_special(out: Path) -> None:
    """Refuse to replace anything at `out` but a regular file (the link itself is judged, not its target)."""
    try:
        mode = out.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LabelingError(f"cannot write {out} ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a folder gets its own sentence
        return
    kind = {stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
            stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    what = next((name for test, name in kind.items() if test(mode)), "not a regular file")
    raise LabelingError(f"{out} is {what}, not a regular file; export replaces only a regular file, so name another --out")
