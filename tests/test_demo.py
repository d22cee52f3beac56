"""`t2i-align demo --quick` end to end: the files and numbers it writes, its report in a real browser (Debian
chromium driven by Playwright), reuse on a rerun, bad input. One file, so that the quick demo runs once
under pytest-xdist's `--dist loadfile`.

No skip when chromium is missing: `make test` installs it, and a browser test that silently does not run
is a test that cannot fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import ALIGN_CLI, CHROMIUM
from playwright.sync_api import sync_playwright

from align.config import load_config
from align.demo.config import DemoConfig
from align.demo.stages import Demo
from align.generation.prompts import load_prompts
from labeling_app.store import open_run_store


def test_quick_demo_prints_every_stage_and_its_report(quick_demo_run):
    """How long it takes is measured, not asserted: stage_seconds.json, and the README's figure."""
    out = quick_demo_run.out
    assert f"report: {(out / 'report.html').resolve()}" in quick_demo_run.stdout
    assert quick_demo_run.stdout.count("== stage ") == len(_stages(out))


def test_quick_demo_hands_over_images_a_new_rater_can_rate(quick_demo_run, tmp_path):
    """The label command the demo prints opens a run with samples left for a person who joins now."""
    printed = re.search(r"t2i-align label (\S+)", quick_demo_run.stdout)
    assert printed, quick_demo_run.stdout[-1000:]
    run = shutil.copytree(printed.group(1), tmp_path / "run")  # the shared demo directory stays untouched
    store = open_run_store(run)
    assert store.progress("new-rater").remaining > 0
    assert store.next_sample("new-rater") is not None


def test_quick_demo_writes_every_stage_output(quick_demo):
    for path in ["round1/train/samples.parquet", "round1/train/labels.db", "round1/heldout/metrics.json",
                 "round1/labels.parquet", "reward-r1/model.safetensors", "reward-r2/model.safetensors",
                 "ddpo/final", "rwr/final", "reward_backprop/final", "eval/ddpo-heldout/metrics.json",
                 "eval/rwr-heldout/metrics.json", "eval/reward_backprop-heldout/metrics.json",
                 "eval/reward_backprop-seen/metrics.json",
                 "round2/train/labels.db", "round2/labels.parquet", "summary.json", "report.html", "stage_seconds.json",
                 "eval/baseline-seen/metrics.json", "eval/ddpo-seen/metrics.json", "eval/rwr-seen/metrics.json",
                 "train_prompts.txt", "heldout_prompts.txt", "seen_prompts.txt", "compare.json", "eval/best_of-seen/metrics.json", "eval/best_of-heldout/metrics.json",
                 "eval/best_of-heldout/candidates/samples.parquet", "ddpo_oracle/final", "rwr_oracle/final",
                 "eval/ddpo_oracle-seen/metrics.json", "eval/rwr_oracle-heldout/metrics.json"]:
        assert (quick_demo / path).exists(), path


def test_the_oracle_arms_optimise_the_oracle_with_their_methods_settings(quick_demo):
    """oracle_arms (on in the quick demo): DDPO and RWR once more, the oracle's 0 / 1 verdict as reward."""
    for arm, method in (("ddpo_oracle", "ddpo"), ("rwr_oracle", "rwr")):
        arm_config = yaml.safe_load((quick_demo / arm / "config.yaml").read_text())
        learned = yaml.safe_load((quick_demo / method / "config.yaml").read_text())
        assert arm_config["reward"]["kind"] == "oracle" and learned["reward"]["kind"] == "learned"
        assert {**arm_config, "reward": None} == {**learned, "reward": None}
    history = json.loads((quick_demo / "ddpo_oracle/metrics.json").read_text())["history"]
    samples = 8  # the quick demo's DDPO epoch
    for record in (h for h in history if "reward/mean" in h):  # the share of aligned samples: a multiple of 1/8
        assert record["reward/mean"] * samples == pytest.approx(round(record["reward/mean"] * samples))
    summary = json.loads((quick_demo / "summary.json").read_text())
    assert {"ddpo_oracle", "rwr_oracle"} <= set(summary["models"]) and "reward_backprop_oracle" not in summary["models"]
    assert "DDPO, oracle reward" in (quick_demo / "report.html").read_text()


def test_quick_demo_summary_numbers_come_from_its_files(quick_demo):
    summary = json.loads((quick_demo / "summary.json").read_text())
    config = load_config(DemoConfig, quick_demo / "demo.yaml", [])
    train, heldout = config.train_prompt_count, config.heldout_prompt_count  # the quick demo's fixed samples
    for name, pool in (("train", train), ("heldout", heldout)):
        sample = {p.text for p in load_prompts(str(quick_demo / f"{name}_prompts.txt"))}
        assert len(sample) == pool and sample <= {p.text for p in load_prompts(name)}
    assert yaml.safe_load((quick_demo / "ddpo/config.yaml").read_text())["prompts"] == str(quick_demo / "train_prompts.txt")
    assert summary["ratings"] == {"round1_train": train, "round1_heldout": 2 * heldout, "round2_train": train}
    assert summary["agreement"]["samples"] == heldout
    for name, model in summary["models"].items():
        assert model["splits"]["unseen"]["images"] == heldout and model["splits"]["seen"]["images"] == 40, name
        for split in ("seen", "unseen"):
            for category, estimate in model["splits"][split]["alignment"].items():
                if estimate["low"] is not None or category == "overall":  # a category of one prompt has no interval
                    assert estimate["low"] <= estimate["value"] <= estimate["high"], (name, split, category)
        unseen_run, = [run for run in model["runs"] if "heldout" in run]
        metrics = json.loads((quick_demo / unseen_run / "metrics.json").read_text())
        assert model["splits"]["unseen"]["alignment"]["overall"]["value"] == pytest.approx(
            metrics["oracle"]["alignment"]["all"]["overall"])
    scores = pd.read_parquet(quick_demo / "eval/ddpo-seen/scores.parquet")
    assert summary["models"]["ddpo"]["splits"]["seen"]["alignment"]["overall"]["value"] == pytest.approx(scores["aligned"].mean())
    for split in ("seen", "unseen"):
        base = summary["models"]["baseline"]["splits"][split]["alignment"]["overall"]["value"]
        ddpo = summary["models"]["ddpo"]["splits"][split]["alignment"]["overall"]["value"]
        closed = summary["gap_closed"]["ddpo"][split]
        assert closed["value"] == pytest.approx((ddpo - base) / (1 - base))
        assert closed["low"] <= closed["value"] <= closed["high"]
    target = summary["targets"]["ddpo_gap_closed"]
    assert target["met"] == (target["low"] >= 0.30)  # the interval's lower end, not the point estimate
    tracking = summary["reward_tracking"]
    assert summary["targets"]["round2_tracking"]["met"] == (tracking["round2_on_ddpo"] >= tracking["round1_on_baseline"])
    assert list(summary["stage_seconds"]) == _stages(quick_demo)[:-1]  # written during the last stage
    assert list(json.loads((quick_demo / "stage_seconds.json").read_text())) == _stages(quick_demo)


SECTIONS = ["Headline", "Baseline, RWR, DDPO, reward backpropagation and best-of-n on seen and unseen prompts", "Learned reward vs CLIP score",
            "Before and after: the same prompt and seed", "Training curves", "Reward hacking",
            "Round 2: rating the fine-tuned model's images", "Rater agreement", "Provenance"]


def test_demo_report_renders_offline_without_errors_or_broken_images(quick_demo, tmp_path):
    report = quick_demo / "report.html"
    assert report.is_file(), f"the quick demo wrote no {report}"
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(tmp_path / "demo_report.png"), full_page=True)
        images = page.evaluate("[...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))")
        headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
        summary_rows = page.locator("h2:text-is('Baseline, RWR, DDPO, reward backpropagation and best-of-n on seen and unseen prompts') ~ table").first.locator("tr")
        models = [summary_rows.nth(i).locator("td").first.text_content() for i in range(1, summary_rows.count())]
        browser.close()
    assert errors == []
    assert [i["alt"] for i in images if not i["ok"]] == []
    assert len(images) >= 4 * 8  # before/after grid alone shows four images a prompt
    assert all(url.startswith(("file:", "data:")) for url in requests)  # offline: nothing fetched from a network
    assert [h for h in headings if h in SECTIONS] == SECTIONS  # all there, in reading order
    assert models == ["Baseline", "DDPO", "DDPO − baseline", "RWR", "RWR − baseline", "Reward backprop",
                      "Reward backprop − baseline", "DDPO, oracle reward", "DDPO, oracle reward − baseline",
                      "RWR, oracle reward", "RWR, oracle reward − baseline", "Best-of-n", "Best-of-n − baseline"]


def test_rerun_reuses_every_stage_and_changes_no_file(quick_demo):
    before = {p: p.stat().st_mtime_ns for p in quick_demo.rglob("*") if p.is_file()}
    result = subprocess.run([*ALIGN_CLI, "demo", "--quick", "--out", str(quick_demo)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("reused from an earlier run") == len(_stages(quick_demo))
    assert {p: p.stat().st_mtime_ns for p in quick_demo.rglob("*") if p.is_file()} == before


def test_another_config_in_the_same_directory_is_refused(quick_demo):
    before = (quick_demo / "demo.yaml").read_text()
    result = subprocess.run([*ALIGN_CLI, "demo", "--quick", "--out", str(quick_demo), "raters=2", "heldout_overlap=1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "another config" in result.stderr
    assert (quick_demo / "demo.yaml").read_text() == before


@pytest.mark.parametrize("override, sentence", [
    ("train_overlap=4", "between 1 and raters"),
    ("noise=1.5", "'noise' in"),
    ("heldout_images_per_prompt=0", "at least 1"),
    ("ddpo_steps=3", "ddpo_steps"),
])
def test_bad_demo_config_is_one_sentence_and_exit_2(tmp_path, override, sentence):
    result = subprocess.run([*ALIGN_CLI, "demo", "--quick", "--out", str(tmp_path / "demo"), override],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()


def _stages(out) -> list[str]:
    return list(Demo(load_config(DemoConfig, out / "demo.yaml", []), out).stages())
