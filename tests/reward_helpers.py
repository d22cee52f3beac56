"""Rated shapes-world runs and a trained reward model, built once per test session.

The runs hold rendered scenes (the world's own renderer, so the oracle can judge them) whose
captions are the true prompt half of the time and a one-attribute perturbation otherwise;
simulated raters rate them and `export` writes labels.parquet, all through the real CLI.
"""

from __future__ import annotations

import random
from pathlib import Path

from align.cli import main
from align.models import SHIPPED
from align.rundir import write_samples
from align.shapes.perturb import perturbations
from align.shapes.prompts import parse_prompt, prompt_of, prompt_set, scene_for
from align.shapes.world import render

TINY_CLIP = SHIPPED["shapes-tiny-clip"]
# Small and quick: a test proves the code path, not the reward's quality at full size.
QUICK_TRAINING = ["train.max_epochs=60", "train.patience=15"]


def write_rendered_run(run: Path, prompts: list[str], n: int, seed: int) -> Path:
    rng = random.Random(seed)
    (run / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        true_prompt = rng.choice(prompts)
        image = render(scene_for(parse_prompt(true_prompt), rng))
        caption = true_prompt if rng.random() < 0.5 else rng.choice(perturbations(true_prompt))
        prompt = prompt_of(parse_prompt(caption))
        image.save(run / "images" / f"{i:06d}.png")
        rows.append({"id": f"{i:06d}", "prompt": caption, "category": prompt.category, "split": prompt.split,
                     "seed": seed + i, "model": "shapes-renderer", "guidance": 0.0, "steps": 0,
                     "image_path": f"images/{i:06d}.png"})
    write_samples(run, rows)
    return run


def rated_labels(root: Path) -> Path:
    """labels.parquet of a training-prompt run and a held-out-prompt run, 2 raters each, 10% noise."""
    labels = root / "labels.parquet"
    if labels.is_file():
        return labels
    runs = []
    for split, n, seed in (("train", 240, 0), ("heldout", 90, 1000)):
        run = write_rendered_run(root / split, [p.text for p in prompt_set(split)], n, seed)
        assert main(["simulate-raters", str(run), "--raters", "2", "--noise", "0.1", "--overlap", "2"]) == 0
        runs.append(str(run))
    assert main(["export", *runs, "--out", str(labels)]) == 0
    return labels


def trained_model(root: Path, labels: Path) -> Path:
    """A reward model directory trained on `labels` with the shipped config, quick settings."""
    out = root / "reward"
    if not out.is_dir():
        assert main(["train-reward", "--labels", str(labels), "--out", str(out), *QUICK_TRAINING]) == 0
    return out
