"""DDPO end to end on the real tiny pipeline with peft LoRA: it runs, logs, checkpoints, resumes
exactly, and leaves LoRA weights that diffusers' `load_lora_weights` reads (that it learns: test_finetune_learning.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from finetune_helpers import assert_lora_changes_pipeline_images, lora_weights, quick, summary

from align.cli import default_config, main

DDPO = default_config("shapes/ddpo.yaml")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddpo")
    assert main(["finetune", "--config", DDPO, "--out", str(tmp / "run"), *quick(tmp, "epochs=3")]) == 0
    return tmp / "run"


def test_run_writes_config_checkpoints_logs_grids_and_lora(full_run):
    assert (full_run / "config.yaml").is_file() and (full_run / "final" / "config.yaml").is_file()
    assert [p.name for p in sorted((full_run / "checkpoints").iterdir())] == ["epoch_0002", "epoch_0003"]  # keep 2
    assert sorted(p.name for p in (full_run / "grids").iterdir()) == [f"epoch_000{i}.png" for i in range(4)]
    weights = lora_weights(full_run)
    assert weights and all(key.startswith("unet.") for key in weights)
    # peft initialises lora_B to zero; training must have moved it
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k or "lora.up" in k)
    stats = summary(full_run)
    assert stats["optimizer_steps"] == 3 * 2  # epochs x minibatches: the 3 trained timesteps accumulate into one step


def test_tensorboard_has_the_issue_s_metrics_and_a_grid(full_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((full_run / "logs").rglob("events.out.tfevents.*")).parent)).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("reward/mean", "reward/std", "eval/unseen/oracle_alignment", "eval/unseen/fidelity_frechet", "train/approx_kl",
                "train/clip_fraction", "train/loss", "perf/samples_per_second"):
        assert tag in scalars, tag
    assert [e.step for e in events.Scalars("eval/unseen/oracle_alignment")] == [0, 1, 2, 3]
    assert "eval/grid" in events.Tags()["images"]


def test_every_record_has_both_splits_and_the_budget_spent(full_run):
    history = summary(full_run)["history"]
    for split in ("seen", "unseen"):
        for h in history:
            assert h[f"eval/{split}/oracle_alignment_low"] <= h[f"eval/{split}/oracle_alignment"] <= h[f"eval/{split}/oracle_alignment_high"]
            assert f"eval/{split}/reward_mean" in h and f"eval/{split}/fidelity_frechet" in h
    assert [h["queries"] for h in history] == [0, 4, 8, 12]  # 4 training samples scored per epoch
    assert [h["optimizer_steps"] for h in history] == [0, 2, 4, 6]  # 2 minibatches x (3 timesteps accumulated) per epoch
    assert summary(full_run)["alignment"]["seen"]["baseline"] == history[0]["eval/seen/oracle_alignment"]


def test_lora_loads_into_a_stable_diffusion_pipeline_and_changes_its_images(full_run):
    assert_lora_changes_pipeline_images(full_run)


def test_stopped_and_resumed_run_matches_the_uninterrupted_one(full_run, tmp_path):
    run = tmp_path / "run"
    assert main(["finetune", "--config", DDPO, "--out", str(run), *quick(tmp_path, "epochs=1")]) == 0
    first = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert main(["finetune", "--config", DDPO, "--out", str(run), "--resume", *quick(tmp_path, "epochs=3")]) == 0
    assert first == ["epoch_0001"]
    resumed, whole = lora_weights(run), lora_weights(full_run)
    assert resumed.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6)
    same = lambda history: [(h["epoch"], h.get("reward/mean"), h.get("eval/unseen/oracle_alignment")) for h in history]
    assert same(summary(run)["history"]) == same(summary(full_run)["history"])


def test_a_run_prints_the_project_s_lines_not_library_noise(tmp_path):
    """As a user sees it: no dtype-cast warning from diffusers, no loading bars, no sqrtm warning."""
    command = [sys.executable, "-m", "align.cli", "finetune", "--config", DDPO, "--out", str(tmp_path / "run"),
               *quick(tmp_path, "epochs=1")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout + result.stderr
    assert "INFO epoch 1:" in printed and "epoch 1 sampling" in printed
    for noise in ("should be kept in float32", "Loading pipeline components", "Loading weights", "LinAlgWarning"):
        assert noise not in printed, noise


def test_generating_with_the_lora_prints_no_library_noise(full_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red square\n")
    command = [sys.executable, "-m", "align.cli", "generate", "--out", str(tmp_path / "run"), f"prompts={prompts}",
               "sampling.steps=3", f"lora={full_run / 'final'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No LoRA keys" not in result.stderr and "Loading pipeline components" not in result.stderr


def test_grouped_sampling_draws_each_prompt_group_size_times(tmp_path):
    """Two groups of two an epoch: each epoch's 4 samples show 2 prompts, each twice; flat groups are counted."""
    from align.finetune.draws import prompt_of

    prompts = [f"prompt {i}" for i in range(50)]
    epoch = [prompt_of(prompts, 0, 3, i, 2) for i in range(4)]
    assert epoch[0] == epoch[1] and epoch[2] == epoch[3]
    assert main(["finetune", "--config", DDPO, "--out", str(tmp_path / "run"),
                 *quick(tmp_path, "epochs=2", "sampling.group_size=2", "eval.every=0", "eval.fidelity=false")]) == 0
    assert all("reward/flat_groups" in h for h in summary(tmp_path / "run")["history"][1:])
    # A reward that is the same for every image leaves every group flat: both groups of each epoch counted.
    from align.config import load_config
    from align.finetune.config import FinetuneConfig
    from align.finetune.ddpo import train

    config = load_config(FinetuneConfig, DDPO, quick(tmp_path, "epochs=2", "sampling.group_size=2", "eval.every=0",
                                                     "eval.oracle=false", "eval.fidelity=false"))
    constant = lambda images, prompts, metadata: torch.zeros(len(images))
    history = train(config, tmp_path / "flat", constant, None)["history"]
    assert [h["reward/flat_groups"] for h in history[1:]] == [2, 2]


def test_the_control_arm_s_update_ignores_the_rewards(tmp_path):
    """control=true is the feedback removed: rewards reversed leave its LoRA bit-identical, where DDPO's changes."""
    from align.config import load_config
    from align.finetune.config import FinetuneConfig
    from align.finetune.ddpo import train

    redness = lambda images, prompts, metadata: (images[:, 0] - images[:, 1:].mean(1)).mean(dim=(1, 2))
    reversed_ = lambda images, prompts, metadata: -redness(images, prompts, metadata)
    finals = {}
    for control in ("true", "false"):
        for name, reward_fn in (("redness", redness), ("reversed", reversed_)):
            config = load_config(FinetuneConfig, DDPO, quick(tmp_path, "epochs=1", f"control={control}", "eval.every=0",
                                                             "eval.oracle=false", "eval.fidelity=false"))
            train(config, tmp_path / f"{control}-{name}", reward_fn, None)
            finals[control, name] = lora_weights(tmp_path / f"{control}-{name}")
    assert all(torch.equal(finals["true", "redness"][k], finals["true", "reversed"][k]) for k in finals["true", "redness"])
    assert any(not torch.equal(finals["false", "redness"][k], finals["false", "reversed"][k]) for k in finals["false", "redness"])
