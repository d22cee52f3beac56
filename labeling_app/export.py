"""labels.parquet: one row per live rating (skips and undone ratings are not exported), across run dirs."""

from __future__ import annotations

import os
import tempfile
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
    """Write labels.parquet atomically (a half-written file never replaces a good one); returns the row count."""
    table = labels_table(stores)
    if table.num_rows == 0:
        names = ", ".join(str(s.run_dir) for s in stores)
        raise LabelingError(f"there are no ratings to export in {names}")
    out = Path(out)
    if out.is_dir():
        raise LabelingError(f"{out} is a folder; name the parquet file to write, e.g. {out / 'labels.parquet'}")
    blocking = next((folder for folder in out.parents if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise LabelingError(f"cannot write {out}: {blocking} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")  # one per call
    except OSError as exc:
        raise LabelingError(f"cannot write {out} ({exc.strerror or exc})") from None
    os.close(handle)
    try:
        pq.write_table(table, partial)
        os.replace(partial, out)
    except OSError as exc:
        raise LabelingError(f"cannot write {out} ({exc.strerror or exc})") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return table.num_rows
