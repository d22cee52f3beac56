"""The same DDPO (and reward backpropagation) job on two CPU processes and on one process, at the
same global batch: the two ranks end with identical weights, and the run agrees with the
single-process one (same samples, same rewards; LoRA weights within a stated tolerance, the
difference being the order of floating-point sums in the gradient all-reduce)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from finetune_helpers import lora_weights, quick, summary

from align.cli import default_config
from reward_helpers import rated_labels, trained_model

TOLERANCE = dict(rtol=1e-3, atol=1e-5)


def launch(processes: int, out, tmp, per_process_batch: int, config: str = "shapes/ddpo.yaml", extra: tuple = ()):
    # accelerate 1.x runs `--cpu --num_processes 2` as ONE process (several CPU processes need mpirun);
    # `--multi_gpu` starts torchrun workers, and without a GPU they join a gloo group (MULTI_CPU).
    placement = ["--multi_gpu"] if processes > 1 else ["--cpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *placement, "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "align.cli", "finetune", "--config", default_config(config), "--out", str(out),
               *quick(tmp, "epochs=2", f"sampling.batch_size={per_process_batch}", f"train.batch_size={per_process_batch}",
                      "sampling.batches_per_epoch=1", "eval.every=0", "eval.fidelity=false", *extra)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return summary(out)


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "reward-data"
    return trained_model(root, rated_labels(root))


def method(name: str, request) -> tuple[str, tuple]:
    if name == "ddpo":
        return "shapes/ddpo.yaml", ()
    reward = request.getfixturevalue("reward_dir")
    return "shapes/reward_backprop.yaml", ("reward.kind=learned", f"reward.path={reward}", "backprop.max_steps=3")


@pytest.mark.parametrize("name", ["ddpo", "reward_backprop"])
def test_two_processes_match_one_at_the_same_global_batch(tmp_path, name, request):
    config, extra = method(name, request)
    one = launch(1, tmp_path / "one", tmp_path, 4, config, extra)
    two = launch(2, tmp_path / "two", tmp_path, 2, config, extra)
    assert two["processes"] == 2 and len(two["rank_checksums"]) == 2
    assert two["rank_checksums"][0] == two["rank_checksums"][1]  # DDP kept the ranks in lockstep
    assert one["optimizer_steps"] == two["optimizer_steps"]
    rewards = lambda s: [h["reward/mean"] for h in s["history"] if "reward/mean" in h]
    # every sample is drawn from the same seed, whichever rank draws it; batches of 2 and 4 round differently
    assert rewards(two) == pytest.approx(rewards(one), rel=1e-4)
    a, b = lora_weights(tmp_path / "one"), lora_weights(tmp_path / "two")
    # Adam's normalised update can turn rounding in a near-zero gradient into a whole step of the
    # opposite sign (2 x the learning rate apart) at each optimizer step, so a rare weight may differ
    # by that much; nearly all must agree closely.
    differences = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    close = torch.cat([torch.isclose(b[k], a[k], **TOLERANCE).flatten() for k in a])
    learning_rate = yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())["train"]["lr"]
    assert differences.max() <= 2 * learning_rate * one["optimizer_steps"], differences.max()
    assert close.float().mean() >= 0.99, f"{close.float().mean():.2%} of weights agree"
