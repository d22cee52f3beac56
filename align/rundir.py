"""A run directory: images/ and samples.parquet (one row per image), plus the resolved config.

samples.parquet columns: id, prompt, category, split, seed, model, guidance, steps,
image_path (relative to the run directory); a best-of-n run adds best_of, candidate_seed and
reward, and its candidates/ sub-run request and reward (generation/best_of.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from align.errors import BadInput

SAMPLES = "samples.parquet"
CONFIG = "config.yaml"
SAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("category", pa.string()),
        ("split", pa.string()),
        ("seed", pa.int64()),
        ("model", pa.string()),
        ("guidance", pa.float64()),
        ("steps", pa.int64()),
        ("image_path", pa.string()),
    ]
)


def ensure_writable_dir(path: Path) -> None:
    """Create `path` (and parents) and prove a file can be written there, or fail in one sentence."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise BadInput(f"cannot write to output directory {path}: {exc.strerror or exc}") from None


def write_samples(run_dir: Path, rows: list[dict], extra_fields: list[pa.Field] = ()) -> None:
    """Write samples.parquet atomically, so a reader never sees half a table."""
    table = pa.Table.from_pylist(rows, schema=pa.schema([*SAMPLE_SCHEMA, *extra_fields]))
    tmp = run_dir / (SAMPLES + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, run_dir / SAMPLES)


def read_samples(run_dir: str | Path) -> pd.DataFrame:
    run_dir = Path(run_dir)
    path = run_dir / SAMPLES
    if not path.is_file():
        raise BadInput(f"{run_dir} is not a run directory: it has no {SAMPLES}")
    try:
        samples = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path} is not a readable parquet file: {exc}") from None
    missing = [name for name in SAMPLE_SCHEMA.names if name not in samples.columns]
    if missing:
        raise BadInput(f"{path} lacks the column(s) {', '.join(missing)}")
    return samples
