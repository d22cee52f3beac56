"""Reward-weighted likelihood end to end: weights from human labels (labels.parquet) and from the
reward of fresh samples, the pre-training loss on clean renders, LoRA that `generate` can use."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import torch
from finetune_helpers import lora_weights, quick, summary

from align.cli import default_config, main
from align.shapes.prompts import parse_prompt, scene_for
from align.shapes.world import render

RWR = default_config("shapes/rwr.yaml")
HELDOUT_PROMPT = "a triangle on a white background"
SMALL = ["epochs=2", "train.batch_size=4", "rwr.pretrain_batch_size=2", "prompts=heldout", "rwr.images_per_prompt=1"]


@pytest.fixture
def labels(tmp_path):
    """A labels.parquet as `t2i-align export` writes it: two raters per image, renders as images."""
    rows = []
    for i, prompt in enumerate(["a blue square", "two circles", "two diamonds", HELDOUT_PROMPT] * 2):
        path = tmp_path / f"{i}.png"
        render(scene_for(parse_prompt(prompt), random.Random(i))).save(path)
        for rater in ("ann", "bob"):
            rows.append({"sample_id": f"{i:06d}", "run_dir": str(tmp_path), "prompt": prompt, "category": "custom",
                         "image_path": str(path), "label": int(i % 2 == 0 or rater == "ann"), "rater": rater})
    pd.DataFrame(rows).to_parquet(tmp_path / "labels.parquet")
    return tmp_path / "labels.parquet"


def test_rwr_from_human_labels(tmp_path, labels):
    out = tmp_path / "run"
    assert main(["finetune", "--config", RWR, "--out", str(out), *quick(tmp_path, *SMALL, "prompts=train", "rwr.source=labels", f"rwr.labels={labels}")]) == 0
    dataset = torch.load(out / "rwr_dataset.pt")
    assert len(dataset["prompts"]) == 6 and HELDOUT_PROMPT not in dataset["prompts"]  # only the training prompts' ratings
    assert sorted(set(dataset["weights"].tolist())) == [0.5, 1.0]  # share of thumbs up
    history = summary(out)["history"]
    assert all(h["train/pretrain_loss"] > 0 and h["train/weighted_loss"] > 0 for h in history if "train/loss" in h)
    assert (out / "final" / "pytorch_lora_weights.safetensors").is_file()


def test_rwr_from_rewards_then_generate_with_the_lora(tmp_path):
    out = tmp_path / "run"
    assert main(["finetune", "--config", RWR, "--out", str(out), *quick(tmp_path, *SMALL, "eval.every=0")]) == 0
    weights = torch.load(out / "rwr_dataset.pt")["weights"]
    assert weights.min() == 0 and weights.max() == 1  # min-max scaled reward
    prompt_file = tmp_path / "p.txt"
    prompt_file.write_text("a blue square\n")
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert main(["generate", "--out", str(base), f"prompts={prompt_file}", "sampling.steps=3"]) == 0
    assert main(["generate", "--out", str(tuned), f"prompts={prompt_file}", "sampling.steps=3", f"lora={out / 'final'}"]) == 0
    assert (base / "images/000000.png").read_bytes() != (tuned / "images/000000.png").read_bytes()


def test_labels_without_ratings_of_the_fine_tuning_prompts_are_refused(tmp_path, labels, capsys):
    heldout_only = tmp_path / "heldout_only.parquet"
    frame = pd.read_parquet(labels)
    frame[frame["prompt"] == HELDOUT_PROMPT].to_parquet(heldout_only)
    out = tmp_path / "run"
    args = quick(tmp_path, *SMALL, "prompts=train", "rwr.source=labels", f"rwr.labels={heldout_only}")
    assert main(["finetune", "--config", RWR, "--out", str(out), *args]) == 2
    assert "no ratings of the fine-tuning prompts" in capsys.readouterr().err
    assert not out.exists()


def test_labels_of_one_class_are_refused_as_train_reward_refuses_them(tmp_path, labels, capsys):
    """RWR reads labels with the reward model's reader: all thumbs up carries no preference to weigh by."""
    all_up = tmp_path / "all_up.parquet"
    pd.read_parquet(labels).assign(label=1).to_parquet(all_up)
    out = tmp_path / "run"
    args = quick(tmp_path, *SMALL, "prompts=train", "rwr.source=labels", f"rwr.labels={all_up}")
    assert main(["finetune", "--config", RWR, "--out", str(out), *args]) == 2
    assert "has only thumbs up ratings" in capsys.readouterr().err
    assert main(["train-reward", "--labels", str(all_up), "--out", str(tmp_path / "reward")]) == 2
    assert "has only thumbs up ratings" in capsys.readouterr().err
    assert not out.exists()


def test_online_rwr_samples_each_round_from_the_current_model_and_resumes_exactly(tmp_path):
    """rwr.resample_every=1: each epoch trains on new samples of the same prompts, counted as new queries."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    # the four evaluation prompts quick() writes, twice each: six rounds of 8 samples, not of 89
    online = [*SMALL, "eval.every=0", "rwr.resample_every=1", f"prompts={tmp_path / 'eval_prompts.txt'}", "rwr.images_per_prompt=2"]
    assert main(["finetune", "--config", RWR, "--out", str(whole), *quick(tmp_path, *online, "epochs=3")]) == 0
    rounds = [torch.load(whole / name) for name in ("rwr_dataset.pt", "rwr_dataset_round2.pt", "rwr_dataset_round3.pt")]
    assert all(r["prompts"] == rounds[0]["prompts"] for r in rounds)  # the same prompts, drawn again
    assert not torch.equal(rounds[0]["latents"], rounds[1]["latents"]) and not torch.equal(rounds[1]["latents"], rounds[2]["latents"])
    history = [h for h in summary(whole)["history"] if "train/loss" in h]
    n = len(rounds[0]["prompts"])
    assert [(h["rwr/round"], h["queries"]) for h in history] == [(1, n), (2, 2 * n), (3, 3 * n)]

    # Stopped after round 1 and resumed: round 2 is drawn by the LoRA the checkpoint restored, exactly as in
    # the uninterrupted run, and the run ends with the same weights.
    assert main(["finetune", "--config", RWR, "--out", str(resumed), *quick(tmp_path, *online, "epochs=1")]) == 0
    assert main(["finetune", "--config", RWR, "--out", str(resumed), "--resume", *quick(tmp_path, *online, "epochs=3")]) == 0
    torch.testing.assert_close(torch.load(resumed / "rwr_dataset_round2.pt")["latents"], rounds[1]["latents"])
    got, want = lora_weights(resumed), lora_weights(whole)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_online_rounds_from_fixed_labels_are_refused(tmp_path, labels, capsys):
    out = tmp_path / "run"
    args = quick(tmp_path, *SMALL, "prompts=train", "rwr.source=labels", f"rwr.labels={labels}", "rwr.resample_every=1")
    assert main(["finetune", "--config", RWR, "--out", str(out), *args]) == 2
    assert "rwr.resample_every draws fresh samples from the current model" in capsys.readouterr().err
    assert not out.exists()


def test_the_control_arm_weighs_every_sample_alike_so_its_update_ignores_the_ratings(tmp_path, labels):
    """control=true is the feedback removed: the labels shuffled across the training prompts' images (the
    same mean) leave its LoRA bit-identical, where the reward-weighted run's changes."""
    shuffled = tmp_path / "shuffled.parquet"
    frame = pd.read_parquet(labels)
    trained = frame["prompt"] != HELDOUT_PROMPT
    frame.loc[trained, "label"] = frame.loc[trained, "label"].sample(frac=1.0, random_state=3).to_numpy()
    frame.to_parquet(shuffled)
    finals = {}
    for arm in ("true", "false"):
        for name, path in (("labels", labels), ("shuffled", shuffled)):
            out = tmp_path / f"{arm}-{name}"
            args = quick(tmp_path, *SMALL, "prompts=train", "rwr.source=labels", f"rwr.labels={path}", "eval.every=0",
                         f"control={arm}")
            assert main(["finetune", "--config", RWR, "--out", str(out), *args]) == 0
            finals[arm, name] = lora_weights(out)
    control, shuffled_control = finals["true", "labels"], finals["true", "shuffled"]
    assert all(torch.equal(control[k], shuffled_control[k]) for k in control)
    method, shuffled_method = finals["false", "labels"], finals["false", "shuffled"]
    assert any(not torch.equal(method[k], shuffled_method[k]) for k in method)
