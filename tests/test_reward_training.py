"""`t2i-align train-reward` end to end: model directory, prompt split, metrics, cache, reproducibility."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from PIL import Image

from align.cli import main
from reward_helpers import QUICK_TRAINING, rated_labels, trained_model
from reward_models.embedding_cache import FOLDER
from reward_models.reward_model import RewardModel


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    return rated_labels(tmp_path_factory.getbasetemp() / "reward-data")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, labels):
    return trained_model(tmp_path_factory.getbasetemp() / "reward-data", labels)


def test_model_directory_holds_model_metrics_and_config(model_dir):
    for name in ("config.json", "model.safetensors", "metrics.json", "predictions.parquet", "splits.json",
                 "training_config.yaml", "without_aux/model.safetensors"):
        assert (model_dir / name).is_file(), name
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for truth in ("raters", "oracle"):
        for scorer in ("reward", "clip_score"):
            values = metrics["heldout"][truth][scorer]
            assert set(values["accuracy_by_category"]) <= {"count", "color", "background", "combination"}
    images = pd.read_parquet(model_dir / "predictions.parquet").drop_duplicates("image_path")
    for scorer in ("reward", "clip_score"):  # the recorded AUC is the one the predictions give, counted here
        assert metrics["heldout"]["oracle"][scorer]["roc_auc"] == pytest.approx(
            rank_auc(images[scorer], images["oracle_label"]))
    assert "oracle" in metrics["without_aux"]["heldout"]
    assert metrics["training"]["best_epoch"] <= metrics["training"]["epochs"]


def test_heldout_prompts_never_train(model_dir, labels):
    splits = json.loads((model_dir / "splits.json").read_text())
    assert not set(splits["test"]) & (set(splits["train"]) | set(splits["val"]))
    heldout_in_labels = set(pd.read_parquet(labels).query("split == 'heldout'")["prompt"])
    assert set(splits["test"]) == heldout_in_labels
    predictions = pd.read_parquet(model_dir / "predictions.parquet")
    assert set(predictions["prompt"]) <= set(splits["test"])


def rank_auc(scores: pd.Series, truth: pd.Series) -> float:
    """ROC-AUC as the chance that a random aligned image outscores a random misaligned one (ties count half)."""
    positive, negative = scores[truth == 1].to_numpy(), scores[truth == 0].to_numpy()
    wins = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return wins / (len(positive) * len(negative))


def test_learned_reward_generalises_to_heldout_prompts(model_dir):
    """Above chance on prompts never trained on by two standard errors of the AUC under chance
    (Hanley & McNeil: sqrt((n1 + n0 + 1) / (12 n1 n0)), about 0.06 for these 90 images); the
    full-size comparison with CLIP score is in the README."""
    oracle = json.loads((model_dir / "metrics.json").read_text())["heldout"]["oracle"]
    images = pd.read_parquet(model_dir / "predictions.parquet").drop_duplicates("image_path")
    n1, n0 = int((images["oracle_label"] == 1).sum()), int((images["oracle_label"] == 0).sum())
    chance_se = ((n1 + n0 + 1) / (12 * n1 * n0)) ** 0.5
    assert oracle["reward"]["roc_auc"] > 0.5 + 2 * chance_se, (oracle["reward"]["roc_auc"], n1, n0)


def test_saved_model_reproduces_its_predictions(model_dir):
    model = RewardModel.from_pretrained(model_dir)
    predictions = pd.read_parquet(model_dir / "predictions.parquet").drop_duplicates("image_path").head(16)
    images = [Image.open(p).convert("RGB") for p in predictions["image_path"]]
    rewards = model(images, list(predictions["prompt"]))
    assert torch.allclose(rewards, torch.tensor(predictions["reward"].to_numpy(), dtype=torch.float32), atol=1e-4)


def test_same_seed_same_model_and_cache_reused(model_dir, labels, tmp_path):
    cache_files = sorted((labels.parent / "train" / FOLDER).rglob("*.safetensors"))
    assert [f.name for f in cache_files] == ["images.safetensors", "texts.safetensors"]
    stamps = [f.stat().st_mtime_ns for f in cache_files]
    again = tmp_path / "again"
    assert main(["train-reward", "--labels", str(labels), "--out", str(again), *QUICK_TRAINING]) == 0
    assert [f.stat().st_mtime_ns for f in cache_files] == stamps  # nothing recomputed, nothing rewritten
    assert (again / "splits.json").read_text() == (model_dir / "splits.json").read_text()
    first, second = (json.loads((d / "metrics.json").read_text())["heldout"] for d in (model_dir, again))
    assert first == second


@pytest.mark.parametrize("variant", [["train.loss=mse", "train.ratings=per_rater", "train.class_balance=false"],
                                     ["train.aux_weight=0", "head.hidden=0"]])
def test_loss_and_rating_variants_train(labels, tmp_path, variant):
    out = tmp_path / "variant"
    assert main(["train-reward", "--labels", str(labels), "--out", str(out), *QUICK_TRAINING, *variant]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert ("without_aux" in metrics) == ("train.aux_weight=0" not in variant)
    if "train.ratings=per_rater" in variant:
        assert metrics["data"]["training_rows"] == metrics["data"]["ratings"]


def test_unfrozen_blocks_train_and_reload(labels, tmp_path):
    out = tmp_path / "unfrozen"
    argv = ["train-reward", "--labels", str(labels), "--out", str(out), *QUICK_TRAINING, "backbone.unfreeze_last_blocks=1",
            "train.max_epochs=1", "train.aux_weight=0"]
    assert main(argv) == 0
    model = RewardModel.from_pretrained(out)
    assert any(k.startswith("backbone.") for k in model.trainable_state())
    predictions = pd.read_parquet(out / "predictions.parquet").drop_duplicates("image_path").head(8)
    images = [Image.open(p).convert("RGB") for p in predictions["image_path"]]
    rewards = model(images, list(predictions["prompt"]))
    assert torch.allclose(rewards, torch.tensor(predictions["reward"].to_numpy(), dtype=torch.float32), atol=1e-4)
