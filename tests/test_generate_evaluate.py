"""`t2i-align generate` and `evaluate` end to end on the shipped pipeline, and their bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, cli_process, one_sentence
from PIL import Image

from align.cli import main

QUICK = ["sampling.steps=4", "images_per_prompt=2"]


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("# three shapes prompts and one outside the world\ntwo red circles on a black background\n"
                    "a blue square\ntwo diamonds\na watercolor fox\n")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, prompt_file) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["generate", "--out", str(out), f"prompts={prompt_file}", *QUICK]) == 0
    return out


def test_generate_writes_images_and_samples(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert list(samples.columns) == ["id", "prompt", "category", "split", "seed", "model", "guidance", "steps", "image_path"]
    assert len(samples) == 8 and samples["seed"].is_unique
    assert samples["category"].tolist()[::2] == ["combination", "color", "count", "custom"]
    for path in samples["image_path"]:
        assert Image.open(run_dir / path).size == (64, 64)
    assert (run_dir / "config.yaml").is_file()


def test_same_seed_same_image_whatever_the_batch(run_dir, prompt_file, tmp_path):
    again = tmp_path / "again"
    assert main(["generate", "--out", str(again), f"prompts={prompt_file}", *QUICK, "sampling.batch_size=3"]) == 0
    for name in ("000000.png", "000005.png"):
        a = np.asarray(Image.open(run_dir / "images" / name), dtype=np.int16)
        b = np.asarray(Image.open(again / "images" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 1  # batched matmuls may round differently


def test_resume_completes_missing_images_only(run_dir, prompt_file, tmp_path):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(run_dir), str(copy)], check=True)
    (copy / "images" / "000003.png").unlink()
    kept = (copy / "images" / "000000.png").stat().st_mtime_ns
    assert main(["generate", "--out", str(copy), "--resume", f"prompts={prompt_file}", *QUICK]) == 0
    assert (copy / "images" / "000003.png").is_file()
    assert (copy / "images" / "000000.png").stat().st_mtime_ns == kept


def scores_parseable(run_dir: Path) -> float:
    """The share of the run's shapes-world images the oracle can parse, judged here image by image."""
    from align.shapes.oracle import judge
    from align.shapes.prompts import parse_prompt

    samples = pd.read_parquet(run_dir / "samples.parquet")
    verdicts = [judge(Image.open(run_dir / path).convert("RGB"), spec)
                for prompt, path in zip(samples["prompt"], samples["image_path"]) if (spec := parse_prompt(prompt))]
    return sum(v.parseable for v in verdicts) / len(verdicts)


def test_evaluate_writes_metrics(run_dir):
    assert main(["evaluate", "--run", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    oracle = metrics["oracle"]
    assert oracle["images"] == 6  # the custom prompt is not judged
    assert oracle["parseable"] == pytest.approx(scores_parseable(run_dir))
    assert set(oracle["alignment"]["all"]) >= {"overall", "combination", "color", "count"}
    assert metrics["clip_score"]["mean"] >= 0
    scores = pd.read_parquet(run_dir / "scores.parquet")
    assert len(scores) == 8 and scores["aligned"].isna().sum() == 2
    assert np.isclose(scores["clip_score"].mean(), metrics["clip_score"]["mean"], atol=1e-4)


def test_existing_run_and_metrics_are_never_overwritten(run_dir, prompt_file):
    before = (run_dir / "samples.parquet").read_bytes()
    err = one_sentence(cli("generate", "--out", str(run_dir), f"prompts={prompt_file}"))
    assert "already exists" in err
    assert (run_dir / "samples.parquet").read_bytes() == before
    main(["evaluate", "--run", str(run_dir), "--overwrite"])
    err = one_sentence(cli("evaluate", "--run", str(run_dir)))
    assert "metrics.json already exists" in err
    scores = (run_dir / "scores.parquet").read_bytes()
    err = one_sentence(cli("evaluate", "--run", str(run_dir), "--out", str(run_dir / "other.json")))
    assert "scores.parquet already exists" in err  # it used to be rewritten while metrics went elsewhere
    assert (run_dir / "scores.parquet").read_bytes() == scores and not (run_dir / "other.json").exists()
    err = one_sentence(cli("generate", "--out", str(run_dir), "--resume", "prompts=heldout"))
    assert "different config" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["model=./no/such/model"], "model path ./no/such/model does not exist"),
        (["prompts=nonsense"], "unknown prompt set 'nonsense'"),
        (["sampling.stepz=3"], "unknown config key 'sampling.stepz'"),
        (["sampling.steps=fast"], "'sampling.steps'"),
        (["images_per_prompt=0"], "must be at least 1, got 0"),
        (["sampling.eta=nan"], "'sampling.eta' in"),
    ],
)
def test_generate_bad_input(tmp_path, args, words):
    err = one_sentence(cli("generate", "--out", str(tmp_path / "out"), *args))
    assert words in err
    assert not (tmp_path / "out" / "samples.parquet").exists()


def test_malformed_yaml(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: shapes-tiny-sd\nsampling: [steps\n")
    assert "not valid YAML" in one_sentence(cli("generate", "--config", str(config), "--out", str(tmp_path / "o")))


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = one_sentence(cli("generate", "--out", str(blocker / "run"), "prompts=heldout"))
    assert "cannot write to output directory" in err


def test_evaluate_corrupt_and_missing_images(run_dir, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(run_dir), str(broken)], check=True)
    (broken / "metrics.json").unlink(missing_ok=True)
    (broken / "scores.parquet").unlink(missing_ok=True)
    (broken / "images" / "000001.png").write_bytes(b"not a png")
    assert "is corrupt" in one_sentence(cli("evaluate", "--run", str(broken)))
    (broken / "images" / "000001.png").unlink()
    assert "is missing" in one_sentence(cli("evaluate", "--run", str(broken)))
    assert "no samples.parquet" in one_sentence(cli("evaluate", "--run", str(tmp_path)))


def last_sentence(result) -> str:
    """Our error line; hub clients log their own offline notices above it."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_sd15_path_reaches_the_loading_call(run_dir, tmp_path):
    """configs/sd15 resolve and validate here; only the hub download itself cannot happen."""
    offline = {"HF_HUB_OFFLINE": "1"}
    result = cli_process("generate", "--config", "configs/sd15/generate.yaml", "--out", str(tmp_path / "sd"), env=offline)
    assert "could not load the Stable Diffusion pipeline 'runwayml/stable-diffusion-v1-5'" in last_sentence(result)
    result = cli_process("evaluate", "--config", "configs/sd15/evaluate.yaml", "--run", str(run_dir),
                         "--out", str(tmp_path / "m.json"), "--overwrite", "device=cpu", env=offline)  # the run has scores already
    assert "could not load open_clip model ViT-L-14 / openai" in last_sentence(result)
