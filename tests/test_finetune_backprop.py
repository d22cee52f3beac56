"""Reward backpropagation end to end on the real tiny pipeline: a planted differentiable reward goes up,
a stopped run resumes exactly, the LoRA loads with `load_lora_weights`, and bad input is refused."""

from __future__ import annotations

import pytest
import torch
from finetune_helpers import assert_lora_changes_pipeline_images, lora_weights, quick, summary
from test_finetune_bad_input import refused

from align.cli import default_config, main
from align.config import load_config
from align.finetune.config import FinetuneConfig
from align.finetune.reward_backprop import train
from reward_helpers import rated_labels, trained_model

BACKPROP = default_config("shapes/reward_backprop.yaml")


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "reward-data"
    return trained_model(root, rated_labels(root))


def backprop(tmp, reward_dir, *extra: str) -> list[str]:
    return quick(tmp, "reward.kind=learned", f"reward.path={reward_dir}", "backprop.max_steps=3", "eval.fidelity=false",
                 *extra)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, reward_dir):
    tmp = tmp_path_factory.mktemp("backprop")
    assert main(["finetune", "--config", BACKPROP, "--out", str(tmp / "run"), *backprop(tmp, reward_dir, "epochs=3")]) == 0
    return tmp / "run"


def redness(images: torch.Tensor, prompts) -> torch.Tensor:
    """A planted differentiable reward: how much redder than green and blue the image is."""
    return 20 * (images[:, 0] - images[:, 1:].mean(1)).mean(dim=(1, 2))


def test_a_planted_differentiable_reward_goes_up_in_a_few_steps(tmp_path):
    reward_fn = lambda images, prompts, metadata: redness(images, prompts).detach().cpu()
    reward_fn.differentiable = redness
    config = load_config(FinetuneConfig, BACKPROP, quick(tmp_path, "epochs=4", "train.lr=1e-2", "backprop.max_steps=3",
                                                         "eval.every=0", "eval.oracle=false", "eval.fidelity=false"))
    history = train(config, tmp_path / "run", reward_fn, None)["history"]
    assert len([h for h in history if "reward/mean" in h]) == 4
    # judged on the evaluation's fixed prompts and seeds, before and after: 4 fresh samples an epoch are too few
    for split in ("seen", "unseen"):
        evaluated = [h[f"eval/{split}/reward_mean"] for h in history if f"eval/{split}/reward_mean" in h]
        assert len(evaluated) == 2 and evaluated[-1] > evaluated[0] + 0.5, (split, evaluated)
    assert all(1 <= h["train/backprop_steps"] <= 3 for h in history if "train/backprop_steps" in h)


def test_an_epoch_of_one_sample_logs_a_reward_spread_of_zero(tmp_path):
    reward_fn = lambda images, prompts, metadata: redness(images, prompts).detach().cpu()
    reward_fn.differentiable = redness
    config = load_config(FinetuneConfig, BACKPROP, quick(tmp_path, "epochs=1", "sampling.batch_size=1", "sampling.batches_per_epoch=1",
                                                         "backprop.max_steps=1", "eval.every=0", "eval.oracle=false", "eval.fidelity=false"))
    history = train(config, tmp_path / "run", reward_fn, None)["history"]
    assert [h["reward/std"] for h in history if "reward/std" in h] == [0.0]


def test_run_records_the_budget_and_its_lora_loads_into_a_pipeline(full_run):
    history = summary(full_run)["history"]
    assert [h["queries"] for h in history] == [0, 4, 8, 12]
    assert [h["optimizer_steps"] for h in history] == [0, 2, 4, 6]  # one step per sampled batch of 2
    assert all("eval/unseen/oracle_alignment" in h and "eval/seen/oracle_alignment" in h for h in history)
    assert_lora_changes_pipeline_images(full_run)


def test_stopped_and_resumed_run_matches_the_uninterrupted_one(full_run, reward_dir, tmp_path):
    run = tmp_path / "run"
    assert main(["finetune", "--config", BACKPROP, "--out", str(run), *backprop(tmp_path, reward_dir, "epochs=1")]) == 0
    assert main(["finetune", "--config", BACKPROP, "--out", str(run), "--resume", *backprop(tmp_path, reward_dir, "epochs=3")]) == 0
    resumed, whole = lora_weights(run), lora_weights(full_run)
    assert resumed.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("extra", "words"), [
    (["reward.kind=oracle"], "needs a differentiable reward, and reward.kind: oracle is not one"),
    (["backprop.max_steps=4"], "1 <= min <= max <= sampling.steps (3), got 1 and 4"),
    (["backprop.min_steps=0"], "'backprop.min_steps' in"),
    (["sampling.batches_per_epoch=2", "train.accumulation=4"], "train.accumulation (4) must divide sampling.batches_per_epoch (2)"),
])
def test_bad_input(extra, words, reward_dir, tmp_path, capsys):
    err = refused(capsys, "--config", BACKPROP, "--out", str(tmp_path / "out"), *backprop(tmp_path, reward_dir, *extra))
    assert words in err
    assert not (tmp_path / "out").exists()


def test_the_control_arm_s_update_ignores_the_reward_s_gradient(tmp_path):
    """control=true samples and steps alike with the reward's gradient off: redness and its negation leave its
    LoRA bit-identical, where reward backpropagation's differ."""
    finals = {}
    for control in ("true", "false"):
        for sign in (1, -1):
            differentiable = lambda images, prompts, sign=sign: sign * redness(images, prompts)
            reward_fn = lambda images, prompts, metadata, d=differentiable: d(images, prompts).detach().cpu()
            reward_fn.differentiable = differentiable
            config = load_config(FinetuneConfig, BACKPROP, quick(tmp_path, "epochs=1", f"control={control}", "backprop.max_steps=2",
                                                                 "eval.every=0", "eval.oracle=false", "eval.fidelity=false"))
            train(config, tmp_path / f"{control}{sign}", reward_fn, None)
            finals[control, sign] = lora_weights(tmp_path / f"{control}{sign}")
    assert all(torch.equal(finals["true", 1][k], finals["true", -1][k]) for k in finals["true", 1])
    assert any(not torch.equal(finals["false", 1][k], finals["false", -1][k]) for k in finals["false", 1])
