"""Bad input to train-reward and report: one sentence, exit code 2, nothing overwritten."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import cli
from reward_helpers import QUICK_TRAINING, rated_labels, trained_model

from labeling_app.export import LABELS_SCHEMA


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    return rated_labels(tmp_path_factory.getbasetemp() / "reward-data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, labels):
    return trained_model(tmp_path_factory.getbasetemp() / "reward-data", labels)


def fails_in_one_sentence(*argv: str) -> str:
    result = cli(*argv)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert err and "Traceback" not in result.stderr, result.stderr[-2000:]
    return err[-1]


def train(labels, out, *extra) -> str:
    return fails_in_one_sentence("train-reward", "--labels", str(labels), "--out", str(out), *QUICK_TRAINING, *extra)


def fingerprint(folder) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_empty_label_file(tmp_path):
    empty = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=LABELS_SCHEMA), empty)
    assert "has no ratings" in train(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_single_class(labels, tmp_path):
    only_up = tmp_path / "up.parquet"
    pd.read_parquet(labels).query("label == 1").to_parquet(only_up)
    assert "only thumbs up ratings" in train(only_up, tmp_path / "out")


def test_missing_images(labels, tmp_path):
    frame = pd.read_parquet(labels)
    run = tmp_path / "run"
    shutil.copytree(frame["run_dir"].iloc[0], run)
    frame = frame[frame["run_dir"] == frame["run_dir"].iloc[0]].copy()
    frame["image_path"] = [str(run / "images" / p.split("/")[-1]) for p in frame["image_path"]]
    (run / "images" / frame["image_path"].iloc[0].split("/")[-1]).unlink()
    moved = tmp_path / "labels.parquet"
    frame.to_parquet(moved)
    assert "image(s) of label file" in train(moved, tmp_path / "out") and "are missing" in train(moved, tmp_path / "out")


def test_unknown_open_clip_backbone(labels, tmp_path):
    assert "open_clip does not know a model named 'ViT-Nope-99'" in train(labels, tmp_path / "out", "backbone.name=ViT-Nope-99")


def test_labels_from_another_prompt_set(labels, tmp_path):
    frame = pd.read_parquet(labels)
    frame["prompt"] = "a watercolor fox"
    foreign = tmp_path / "fox.parquet"
    frame.to_parquet(foreign)
    assert "comes from another prompt set" in train(foreign, tmp_path / "out")


def test_report_refuses_labels_of_another_split(model_dir, labels, tmp_path):
    frame = pd.read_parquet(labels)
    frame["split"] = "heldout"  # claims the training prompts as held out: not the split the model was trained with
    other = tmp_path / "other.parquet"
    frame.to_parquet(other)
    message = fails_in_one_sentence("report", "--reward-model", str(model_dir), "--labels", str(other), "--out",
                                    str(tmp_path / "report.html"))
    assert "comes from another prompt set" in message and not (tmp_path / "report.html").exists()


def test_finished_model_and_report_are_not_overwritten(model_dir, labels, tmp_path):
    before = fingerprint(model_dir)
    assert "already exists; pass --overwrite" in train(labels, model_dir)
    assert fingerprint(model_dir) == before
    report = tmp_path / "report.html"
    report.write_text("an earlier report")
    message = fails_in_one_sentence("report", "--reward-model", str(model_dir), "--labels", str(labels), "--out", str(report))
    assert "already exists; pass --overwrite" in message and report.read_text() == "an earlier report"
