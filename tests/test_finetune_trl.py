"""`backend: trl`: the same DDPO run through TRL 0.23's DDPOTrainer, with this project's evaluation,
history and LoRA output around it; and what TRL's trainer lacks is refused up front."""

from __future__ import annotations

import pytest
from finetune_helpers import assert_lora_changes_pipeline_images, lora_weights, quick, summary

from align.cli import default_config, main

DDPO = default_config("shapes/ddpo.yaml")


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trl")
    assert main(["finetune", "--config", DDPO, "--out", str(tmp / "run"), *quick(tmp, "epochs=2", "backend=trl")]) == 0
    return tmp / "run"


def test_trl_run_keeps_this_project_s_history_log_and_tensorboard(trl_run):
    stats = summary(trl_run)
    history = stats["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert all("eval/unseen/oracle_alignment" in h and "eval/unseen/fidelity_frechet" in h for h in history)
    assert all("reward/mean" in h and "perf/samples_per_second" in h for h in history[1:])
    assert stats["optimizer_steps"] == 2 * 2  # epochs x minibatches of TRL's trainer
    assert "TRL's DDPOTrainer" in (trl_run / "train.log").read_text()
    assert list((trl_run / "logs").rglob("events.out.tfevents.*"))
    assert (trl_run / "final" / "config.yaml").is_file()


def test_trl_lora_was_trained_and_loads_into_a_stable_diffusion_pipeline(trl_run):
    weights = lora_weights(trl_run)
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k or "lora.up" in k)
    assert_lora_changes_pipeline_images(trl_run)


@pytest.mark.parametrize("overrides, sentence", [
    (["method=rwr"], "runs DDPO only"),
    (["train.kl_coef=0.1"], "no KL penalty"),
    (["lora.rank=8"], "fixed LoRA"),
])
def test_what_trl_lacks_is_refused_before_anything_is_written(tmp_path, capsys, overrides, sentence):
    out = tmp_path / "run"
    assert main(["finetune", "--config", DDPO, "--out", str(out), *quick(tmp_path, "backend=trl", *overrides)]) == 2
    assert sentence in capsys.readouterr().err
    assert not out.exists()


def test_resume_is_refused_and_the_finished_run_is_untouched(trl_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in trl_run.rglob("*") if p.is_file()}
    assert main(["finetune", "--config", DDPO, "--out", str(trl_run), "--resume", *quick(trl_run.parent, "epochs=2", "backend=trl")]) == 2
    assert "no checkpoints to resume" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in trl_run.rglob("*") if p.is_file()} == before
