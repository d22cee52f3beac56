"""Bad input to `t2i-align finetune`: one sentence, exit code 2, earlier checkpoints untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from finetune_helpers import quick

from align.cli import default_config, main

DDPO = default_config("shapes/ddpo.yaml")


def refused(capsys, *argv: str) -> str:
    assert main(["finetune", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def fingerprint(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    assert main(["finetune", "--config", DDPO, "--out", str(tmp / "run"), *quick(tmp, "epochs=1", "eval.fidelity=false")]) == 0
    return tmp


def test_reward_model_directory_that_does_not_load(tmp_path, capsys):
    broken = tmp_path / "reward"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"garbage")
    err = refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"), *quick(tmp_path, "reward.kind=learned", f"reward.path={broken}"))
    assert str(broken) in err
    assert not (tmp_path / "out").exists()


def test_lora_rank_zero(tmp_path, capsys):
    assert "lora.rank" in refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"), *quick(tmp_path, "lora.rank=0"))


def test_batch_invariants(tmp_path, capsys):
    err = refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"), *quick(tmp_path, "sampling.batch_size=3", "sampling.batches_per_epoch=1", "train.batch_size=2"))
    assert "divisible" in err
    err = refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"), *quick(tmp_path, "train.accumulation=3"))
    assert "train.accumulation 3" in err
    assert not (tmp_path / "out").exists()


def test_a_trained_step_range_outside_the_schedule(tmp_path, capsys):
    for first, last in (("3", "2"), ("1", "4"), ("5", "0")):  # the quick runs sample 3 steps
        err = refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"),
                      *quick(tmp_path, f"train.timestep_first={first}", f"train.timestep_last={last}"))
        assert "1 <= first <= last <= sampling.steps (3" in err, err
    assert not (tmp_path / "out").exists()


def test_group_size_that_does_not_divide_the_epoch(tmp_path, capsys):
    for size in ("3", "1", "-2"):  # 4 samples an epoch
        err = refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"), *quick(tmp_path, f"sampling.group_size={size}"))
        assert "sampling.group_size" in err and "divide the 4 samples" in err
    assert "group_size=0" in refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"),
                                     *quick(tmp_path, "sampling.group_size=2", "backend=trl"))
    assert "no control arm" in refused(capsys, "--config", DDPO, "--out", str(tmp_path / "out"),
                                       *quick(tmp_path, "control=true", "backend=trl"))
    assert not (tmp_path / "out").exists()


def test_resume_with_another_config_leaves_checkpoints_untouched(finished_run, capsys):
    run = finished_run / "run"
    before = fingerprint(run)
    err = refused(capsys, "--config", DDPO, "--out", str(run), "--resume", *quick(finished_run, "epochs=2", "eval.fidelity=false", "train.lr=1e-2"))
    assert "different config" in err and "train" in err
    assert fingerprint(run) == before


def test_resume_without_a_checkpoint_is_refused_not_started_over(finished_run, capsys):
    """A run stopped before its first checkpoint: --resume used to start over silently, overwriting it."""
    stopped = finished_run / "stopped"
    stopped.mkdir()
    (stopped / "config.yaml").write_bytes((finished_run / "run" / "config.yaml").read_bytes())
    (stopped / "metrics.jsonl").write_text('{"epoch": 0}\n')
    before = fingerprint(stopped)
    err = refused(capsys, "--config", DDPO, "--out", str(stopped), "--resume", *quick(finished_run, "epochs=1", "eval.fidelity=false"))
    assert "no checkpoint yet" in err
    assert fingerprint(stopped) == before


def test_new_run_into_an_existing_run_is_refused(finished_run, capsys):
    run = finished_run / "run"
    before = fingerprint(run)
    assert "--resume" in refused(capsys, "--config", DDPO, "--out", str(run), *quick(finished_run, "epochs=1", "eval.fidelity=false"))
    assert fingerprint(run) == before


def test_exit_code_through_the_real_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "align.cli", "finetune", "--out", str(tmp_path / "o"), "lora.rank=0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "lora.rank" in result.stderr
