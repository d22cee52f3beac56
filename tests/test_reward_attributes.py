"""Reasons as training signal: the "wrong shape" tag from the app to the reward's attribute heads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import cli
from conftest import RATER_PASSWORD
from reward_helpers import QUICK_TRAINING, rated_labels
from test_labeling_access import serving

from align.cli import main
from labeling_app.http_client import RatingClient
from reward_models.config import HeadConfig, RewardConfig, TrainConfig
from reward_models.labels import ATTRIBUTES, attribute_targets, read_labels, training_rows
from reward_models.metrics import roc_auc
from reward_models.reward_model import RewardModel
from reward_models.training import Features, HeadTrainer, outputs_for


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    return rated_labels(tmp_path_factory.getbasetemp() / "reward-data")


def test_reason_tags_become_attribute_targets():
    ratings = pd.DataFrame({"label": [1, 0, 0, 0], "reasons": [[], ["wrong shape", "malformed"], [], None]})
    targets = attribute_targets(ratings)
    assert list(targets.columns) == [f"target_{a}" for a in ATTRIBUTES]
    assert targets.iloc[0].tolist() == [1.0] * 5  # a thumbs up: every attribute right
    assert targets.iloc[1].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]  # count shape colour background malformed
    assert targets.iloc[2:].isna().all().all()  # a thumbs down without reasons says nothing per attribute


def test_the_wrong_shape_tag_goes_from_the_app_to_training(tmp_path):
    """A rater ticks "wrong shape" in the real server; export carries it; training reads it as shape = 0."""
    with serving(tmp_path, 2, "bob") as server:
        bob = RatingClient(server.url, "bob", RATER_PASSWORD)
        bob.start()
        assert bob.thumbs_down(["wrong shape", "wrong shape"])["outcome"] == "saved"  # ticked twice, kept once
        assert bob.thumbs_up()["outcome"] == "saved"
        run = server.run
    out = tmp_path / "labels.parquet"
    assert main(["export", str(run), "--out", str(out)]) == 0
    exported = read_labels(out)
    assert [list(r) for r in exported.sort_values("sample_id")["reasons"]] == [["wrong shape"], []]
    rows = training_rows(exported, "mean").sort_values("sample_id")
    assert rows[["target", "target_shape", "target_count"]].to_numpy().tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]


def planted_features(n: int, dim: int = 16, seed: int = 0) -> tuple[Features, pd.DataFrame]:
    """Random unit embeddings; attribute i fails exactly when image coordinate i is negative."""
    rng = np.random.default_rng(seed)
    images = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(n, dim)), dtype=torch.float32), dim=-1)
    texts = torch.nn.functional.normalize(torch.ones(1, dim), dim=-1)
    failing = images[:, : len(ATTRIBUTES)].numpy() < -0.1
    reasons = [[tag for tag, bad in zip(("wrong count", "wrong shape", "wrong colour", "wrong background", "malformed"), row)
                if bad] for row in failing]
    labels = pd.DataFrame({"image_path": [f"{i}.png" for i in range(n)], "prompt": "p", "label": (~failing.any(1)).astype(int),
                           "reasons": reasons, "part": ["train" if i % 5 else "val" for i in range(n)]})
    return Features(list(labels["image_path"]), ["p"], images, texts), labels


def test_attribute_heads_learn_a_planted_rule():
    features, labels = planted_features(1500)
    config = RewardConfig(head=HeadConfig(hidden=64), train=TrainConfig(aux_weight=0, max_epochs=200, patience=20))
    trainer = HeadTrainer(config, training_rows(labels, "mean"), features, {}, torch.device("cpu"), progress=False)
    model, _ = trainer.fit(0.0)
    test_features, test_labels = planted_features(400, seed=1)
    trainer.features = test_features
    outputs = outputs_for(model, trainer, test_labels["image_path"], test_labels["prompt"])
    for i, attribute in enumerate(ATTRIBUTES):
        right = attribute_targets(test_labels)[f"target_{attribute}"].to_numpy()
        assert roc_auc(outputs[:, 1 + i].numpy(), right) > 0.95, attribute


def test_labels_without_reasons_still_train(labels, tmp_path):
    bare = tmp_path / "bare.parquet"
    pd.read_parquet(labels).drop(columns=["reasons"]).to_parquet(bare)
    out = tmp_path / "model"
    assert main(["train-reward", "--labels", str(bare), "--out", str(out), *QUICK_TRAINING]) == 0
    model = RewardModel.from_pretrained(out)
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert {"p_thumbs_up", "p_shape"} <= set(predictions.columns)
    assert json.loads((out / "metrics.json").read_text())["heldout"]["oracle"]["reward"]["roc_auc"] > 0.6
    assert model.head_config.attributes


def test_an_unknown_reason_tag_is_refused(labels, tmp_path):
    odd = tmp_path / "odd.parquet"
    frame = pd.read_parquet(labels)
    frame.at[frame.index[0], "reasons"] = ["too blurry"]
    frame.to_parquet(odd)
    result = cli("train-reward", "--labels", str(odd), "--out", str(tmp_path / "model"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "reason tag 'too blurry'" in result.stderr
    assert not (tmp_path / "model").exists()
