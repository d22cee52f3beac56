"""Paired intervals on data with a known answer, and `t2i-align compare` end to end and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, one_sentence

from align.cli import main
from align.evaluation import paired

GENERATE = ["sampling.steps=4", "images_per_prompt=3"]
PROMPTS = "a red square\nthree circles\ntwo blue circles on a black background\na purple triangle\nthree diamonds\n"


def simulated(prompts: int = 150, images: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts of a model whose prompts differ in difficulty (as real prompts do)."""
    rng = np.random.default_rng(seed)
    prompt = np.repeat(np.arange(prompts), images)
    aligned = (rng.uniform(size=prompt.size) < rng.uniform(size=prompts)[prompt]).astype(float)
    return aligned, prompt


def test_identical_models_differ_by_zero_with_a_narrow_interval():
    aligned, prompt = simulated()
    same = paired.difference(aligned, aligned, prompt)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    alone = paired.mean(aligned, prompt)
    assert alone.low < aligned.mean() < alone.high and alone.high - alone.low > 0.05  # prompts vary: a model's own interval is wide


def test_a_shift_of_ten_points_is_detected_and_measured():
    aligned, prompt = simulated()
    rng = np.random.default_rng(1)
    better = aligned.copy()
    better[rng.choice(np.flatnonzero(aligned == 0), size=int(0.10 * aligned.size), replace=False)] = 1
    shift = paired.difference(aligned, better, prompt)
    assert shift.value == pytest.approx(0.10)
    assert shift.low > 0.05 and shift.low < 0.10 < shift.high < 0.15
    alone = paired.mean(aligned, prompt)
    assert shift.high - shift.low < (alone.high - alone.low) * 0.75  # pairing removes the prompts' difficulty
    gap = paired.gap_closed(aligned, better, prompt)
    assert gap.value == pytest.approx(0.10 / (1 - aligned.mean()))
    assert gap.low < gap.value < gap.high


def test_models_of_equal_quality_are_covered_about_95_times_in_100():
    """Two independent draws from the same per-prompt success rates: the true difference is 0."""
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        prompt = np.repeat(np.arange(150), 2)
        rate = rng.uniform(size=150)[prompt]
        a, b = (rng.uniform(size=(2, prompt.size)) < rate).astype(float)
        covered += not paired.difference(a, b, prompt, resamples=1000).excludes(0.0)
    assert covered >= 88


def test_one_prompt_has_no_interval():
    assert paired.mean([1.0, 0.0], ["a", "a"]) == paired.Estimate(0.5, None, None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A baseline and a 'fine-tuned' model (other guidance) on the same prompts and seeds, plus a run with other seeds."""
    root = tmp_path_factory.mktemp("compare")
    prompts = root / "prompts.txt"
    prompts.write_text(PROMPTS)
    made = {}
    for name, extra in {"base": [], "tuned": ["sampling.guidance=2.0"], "other-seeds": ["seed=7"]}.items():
        made[name] = root / name
        assert main(["generate", "--out", str(made[name]), f"prompts={prompts}", *GENERATE, *extra]) == 0
    assert main(["evaluate", "--run", str(made["base"])]) == 0  # one run with cached scores, one scored by compare
    return made


def test_compare_pairs_two_models_on_both_splits(runs, tmp_path):
    out = tmp_path / "compare.json"
    result = cli("compare", "--run", f"baseline={runs['base']}", "--run", f"tuned={runs['tuned']}", "--out", str(out),
                 "resamples=500")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "seen prompts: 9 images of 3 prompts" in result.stdout and "unseen prompts: 6 images of 2 prompts" in result.stdout
    assert "gap closed" in result.stdout
    comparison = json.loads(out.read_text())
    assert comparison["baseline"] == "baseline" and set(comparison["models"]) == {"baseline", "tuned"}
    for split in ("seen", "unseen"):
        base = comparison["models"]["baseline"]["splits"][split]
        assert set(base) >= {"alignment", "attribute_accuracy", "parseable", "clip_score", "fidelity_frechet"}
        stated = {"count", "shape", "color", "background"} if split == "seen" else {"count", "shape", "color"}
        assert set(base["attribute_accuracy"]) == stated  # the unseen prompts name no background
        versus = comparison["models"]["tuned"]["versus_baseline"][split]
        tuned = comparison["models"]["tuned"]["splits"][split]
        difference = versus["by_category"]["overall"]["difference"]
        assert difference["value"] == pytest.approx(tuned["alignment"]["overall"]["value"] - base["alignment"]["overall"]["value"])
        assert difference["low"] <= difference["value"] <= difference["high"]
        assert set(versus) >= {"clip_score_difference", "changed_verdicts", "by_category"}

    scores = pd.read_parquet(runs["base"] / "scores.parquet")
    seen = scores[scores["split"] == "train"]
    assert comparison["models"]["baseline"]["splits"]["seen"]["alignment"]["overall"]["value"] == pytest.approx(
        seen["aligned"].astype(float).mean())


def test_runs_of_other_seeds_are_refused(runs, tmp_path):
    err = one_sentence(cli("compare", "--run", f"a={runs['base']}", "--run", f"b={runs['other-seeds']}",
                           "--out", str(tmp_path / "c.json")))
    assert "different prompts or seeds" in err
    assert not (tmp_path / "c.json").exists()


def test_an_empty_run_a_reward_model_that_does_not_load_and_a_bad_flag_are_refused(runs, tmp_path):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    pd.read_parquet(runs["base"] / "samples.parquet").iloc[:0].to_parquet(empty / "samples.parquet")
    assert "has no samples" in one_sentence(cli("compare", "--run", f"a={runs['base']}", "--run", f"b={empty}", "--out", str(tmp_path / "c.json")))
    not_a_model = cli("compare", "--run", f"a={runs['base']}", "--run", f"b={runs['tuned']}", "--out", str(tmp_path / "c.json"),
                      f"reward_model={tmp_path}")
    assert "not a reward model directory" in one_sentence(not_a_model)
    assert "NAME=RUN_DIR" in one_sentence(cli("compare", "--run", str(runs["base"]), "--run", f"b={runs['tuned']}", "--out", str(tmp_path / "c.json")))
    assert "at least two models" in one_sentence(cli("compare", "--run", f"a={runs['base']}", "--out", str(tmp_path / "c.json")))


def test_an_existing_result_is_kept(runs, tmp_path):
    out = tmp_path / "compare.json"
    out.write_text("earlier result")
    err = one_sentence(cli("compare", "--run", f"a={runs['base']}", "--run", f"b={runs['tuned']}", "--out", str(out)))
    assert "--overwrite" in err and out.read_text() == "earlier result"
