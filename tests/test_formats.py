"""The file contracts between the packages agree wherever a leaf must spell one out again.

labeling_app/ and reward_models/ import nothing of the project (test_layout.py), so the
samples.parquet columns, the labels.parquet columns and the thumbs-down reason tags are written
once by their producer and repeated by each consumer that cannot import it. These tests are
what keeps the copies one contract.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from align.rundir import SAMPLE_SCHEMA
from align.shapes.simulated_raters import REASON_OF_ATTRIBUTE
from labeling_app.export import LABELS_SCHEMA
from labeling_app.run_dir import SAMPLE_COLUMNS
from labeling_app.store import REASONS
from reward_models.labels import ATTRIBUTE_OF_REASON, REQUIRED_COLUMNS, read_labels


def test_the_labeling_app_reads_the_columns_generate_writes():
    assert SAMPLE_COLUMNS == tuple(SAMPLE_SCHEMA.names)


def test_reward_training_reads_what_export_writes(tmp_path):
    assert set(REQUIRED_COLUMNS) <= set(LABELS_SCHEMA.names)
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    row = {"rating_id": 1, "sample_id": "000000", "run_dir": str(tmp_path), "prompt": "a red circle", "category": "color",
           "split": "train", "image_path": str(image), "model": "m", "seed": 0, "rater": "ann", "rater_kind": "human",
           "reasons": [], "created_at": None}
    rows = [row | {"label": 1}, row | {"rating_id": 2, "rater": "bob", "label": 0, "reasons": list(REASONS)}]
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELS_SCHEMA), tmp_path / "labels.parquet")
    assert len(read_labels(tmp_path / "labels.parquet")) == 2  # every tag the app offers is one reward_models knows


def test_one_set_of_reason_tags():
    assert set(ATTRIBUTE_OF_REASON) == set(REASONS)
    assert set(REASON_OF_ATTRIBUTE.values()) <= set(REASONS)
