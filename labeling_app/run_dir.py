"""Reading a run directory written by `t2i-align generate`: images/ plus samples.parquet."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from labeling_app.errors import LabelingError

log = logging.getLogger(__name__)

# Far above any image a run holds (Stable Diffusion v1.5 writes 512 x 512); a header claiming more is refused
# before its pixels are decoded.
MAX_IMAGE_PIXELS = 4096 * 4096

SAMPLE_COLUMNS = ("id", "prompt", "category", "split", "seed", "model", "guidance", "steps", "image_path")


@dataclass(frozen=True)
class Sample:
    id: str
    prompt: str
    category: str
    split: str
    seed: int
    model: str
    image_path: str  # relative to the run dir

    def image_file(self, run_dir: Path) -> Path:
        return run_dir / self.image_path


def resolve_run_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir).expanduser().resolve()
    if not path.is_dir():
        raise LabelingError(f"run directory {run_dir} does not exist")
    return path


def read_samples(run_dir: Path) -> list[Sample]:
    """All samples of the run, in file order; refuses a run without any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_path = run_dir / "samples.parquet"
    if not table_path.is_file():
        raise LabelingError(f"run directory {run_dir} has no samples.parquet (write it with `t2i-align generate`)")
    try:
        table = pq.read_table(table_path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LabelingError(f"{table_path} is not a readable parquet file ({exc})") from None
    missing = [name for name in SAMPLE_COLUMNS if name not in table.column_names]
    if missing:
        raise LabelingError(f"{table_path} lacks the column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise LabelingError(f"{table_path} holds no samples, so there is nothing to label")
    fields = ["id", "prompt", "category", "split", "seed", "model", "image_path"]
    for name in fields:
        if table.column(name).null_count:
            raise LabelingError(f"{table_path} has {table.column(name).null_count} row(s) with no {name}")
    rows = table.select(fields).to_pylist()
    samples = [Sample(**{**row, "id": str(row["id"]), "seed": int(row["seed"])}) for row in rows]
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise LabelingError(f"{table_path} lists some sample ids more than once")
    return samples


def image_problem(run_dir: Path, sample: Sample) -> str | None:
    """Why this sample's image cannot be shown, or None when it is an image inside the run dir that decodes
    whole, at a size the app shows."""
    from PIL import Image

    path = (run_dir / sample.image_path).resolve()
    if not path.is_relative_to(run_dir):
        return f"image path {sample.image_path} points outside the run directory"
    if not path.is_file():
        return f"image file {sample.image_path} is missing"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return (f"image file {sample.image_path} claims too many pixels ({width}×{height};"
                            f" the app shows at most {MAX_IMAGE_PIXELS})")
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"image file {sample.image_path} claims too many pixels ({exc})"
    # Any failure to decode, whatever a decoder raises on a hostile file: the sample is left out, the app goes on.
    except Exception as exc:
        return f"image file {sample.image_path} is not a readable image ({exc.__class__.__name__})"
    return None
