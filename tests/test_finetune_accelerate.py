"""The same DDPO (and reward backpropagation) job on two CPU processes and on one process, at the
same global batch: the two ranks end with identical weights, tensor by tensor, and the run agrees
with the single-process one: same samples, same rewards, and LoRA weights within what AdamW can
make of gradients that differ only in the order of floating-point sums (the all-reduce adds two
half-batch gradients, one process adds them in another order).

Why that bound. AdamW moves each weight by lr * m_hat / (sqrt(v_hat) + eps) (plus a decay of
lr * weight_decay * w). Kingma & Ba (2015, section 2.1) bound |m_hat / sqrt(v_hat)| by
(1 - beta1) / sqrt(1 - beta2) = 3.16 for the default betas, whatever the gradients. Rounding can
flip the sign of a gradient that is itself at rounding level, so one step may move a weight in the
two runs by up to 2 x 3.16 x lr apart; after T steps no weight may differ by more than
6.32 x lr x T. A weight whose gradient is well above rounding level gets the same Adam step in both
runs up to the gradient's relative rounding error (about 1e-4 for float32 sums over a batch; measured
here: medians within 3e-4 of a step), so in every tensor the median weight must agree within 1% of
lr x T. A layer whose gradients were wrong (not reduced, reduced twice, scaled) moves most of its
weights by a large part of a step, its median with them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from finetune_helpers import lora_weights, quick, summary

from align.cli import default_config
from reward_helpers import rated_labels, trained_model

ADAM_STEP_BOUND = (1 - 0.9) / (1 - 0.999) ** 0.5  # |m_hat / sqrt(v_hat)| <= this, default betas
MEDIAN_SHARE_OF_A_STEP = 0.01


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
    assert two["processes"] == 2 and len(two["rank_weight_digests"]) == 2
    assert two["rank_weight_digests"][0] == two["rank_weight_digests"][1]  # every tensor bit-equal on both ranks
    assert one["optimizer_steps"] == two["optimizer_steps"]
    rewards = lambda s: [h["reward/mean"] for h in s["history"] if "reward/mean" in h]
    # every sample is drawn from the same seed, whichever rank draws it; batches of 2 and 4 round differently
    assert rewards(two) == pytest.approx(rewards(one), rel=1e-4)
    a, b = lora_weights(tmp_path / "one"), lora_weights(tmp_path / "two")
    learning_rate = yaml.safe_load((tmp_path / "one" / "config.yaml").read_text())["train"]["lr"]
    steps = learning_rate * one["optimizer_steps"]
    for name in a:
        difference = (a[name] - b[name]).abs()
        assert difference.max() <= 2 * ADAM_STEP_BOUND * steps, (name, float(difference.max()), steps)
        assert difference.median() <= MEDIAN_SHARE_OF_A_STEP * steps, (name, float(difference.median()), steps)
