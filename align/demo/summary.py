"""OUT/summary.json of a demo run: every headline number, each with the file it comes from.

Baseline, every fine-tuned model and best-of-n sampling are compared on both splits (seen: training prompts with fresh seeds;
unseen: held-out prompts), each on the same prompts and seeds, by `t2i-align compare`
(OUT/compare.json): alignment, CLIP score, mean round-1 reward, fidelity, and the paired gap
closed, each with its 95% interval. A target is met only when its interval's lower end clears it.
Reward tracking is the ROC-AUC of a reward model against the oracle's verdict on one model's
held-out images: does the reward still rank the images the way the oracle does?
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from align.demo.config import DemoConfig, heldout_run
from align.evaluation.evaluate import load_images
from align.rundir import read_samples
from labeling_app.agreement import krippendorff_alpha_nominal, pairwise_agreement
from reward_models.metrics import roc_auc
from reward_models.reward_model import RewardModel

BEST_OF_RUNS = ("eval/best_of-seen", "eval/best_of-heldout")  # their candidates/ are the best-of-n curves' pools
GAP_TARGET = 0.30  # of the unseen split's gap, by DDPO


def write_summary(out: Path, config: DemoConfig, timings: dict) -> dict:
    comparison = json.loads((out / "compare.json").read_text())
    runs = {name: _HeldoutRun(out / heldout_run(name)) for name in ("baseline", "ddpo")}
    rewards = {r: RewardModel.from_pretrained(out / r) for r in ("reward-r1", "reward-r2")}
    loras = {name: f"{name}/final" if name in config.methods() else None for name in config.models()}
    models = {name: {"runs": [str(Path(r).relative_to(out.resolve())) for r in comparison["runs"][name]], "lora": lora,
                     **comparison["models"][name]} for name, lora in loras.items()}
    gap_closed = {m: {split: versus["by_category"]["overall"]["gap_closed"]
                      for split, versus in models[m]["versus_baseline"].items()} for m in loras if m != "baseline"}
    ddpo_unseen = gap_closed["ddpo"]["unseen"]
    tracking = {"round1_on_baseline": runs["baseline"].tracking(rewards["reward-r1"]),
                "round1_on_ddpo": runs["ddpo"].tracking(rewards["reward-r1"]),
                "round2_on_ddpo": runs["ddpo"].tracking(rewards["reward-r2"])}
    labels1, labels2 = pd.read_parquet(out / "round1/labels.parquet"), pd.read_parquet(out / "round2/labels.parquet")
    summary = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cores()} CPU cores, {platform.system()}",
        "config": asdict(config),
        "models": models,
        "gap_closed": gap_closed,
        "reward_tracking": tracking,
        "agreement": _agreement(labels1[labels1["split"] == "heldout"]),
        "ratings": {"round1_train": int((labels1["split"] == "train").sum()),
                    "round1_heldout": int((labels1["split"] == "heldout").sum()),
                    "round2_train": len(labels2) - len(labels1)},
        "targets": {
            "ddpo_gap_closed": {**ddpo_unseen, "split": "unseen", "target": GAP_TARGET,
                                "met": _at_least(ddpo_unseen["low"], GAP_TARGET)},
            "round2_tracking": {"value": tracking["round2_on_ddpo"], "target": tracking["round1_on_baseline"],
                                "met": _at_least(tracking["round2_on_ddpo"], tracking["round1_on_baseline"])},
        },
        "stage_seconds": timings,
        "sources": {
            "models, gap_closed": "compare.json (`t2i-align compare`; per image: <run>/scores.parquet)",
            "reward tracking": "reward-r1/, reward-r2/ applied to <run>/images",
            "agreement, ratings": "round1/labels.parquet, round2/labels.parquet",
            "training curves": ", ".join(f"{m}/metrics.json" for m in config.methods()) + " (history)",
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


class _HeldoutRun:
    """One model's evaluated held-out run: its images, prompts and the oracle's verdicts."""

    def __init__(self, run: Path):
        samples = read_samples(run).sort_values("id")
        scores = pd.read_parquet(run / "scores.parquet").set_index("id").loc[samples["id"]]
        self.prompts = list(samples["prompt"])
        self.images = load_images(run, samples)
        self.aligned = scores["aligned"].to_numpy(dtype=float)

    def rewards(self, model: RewardModel) -> np.ndarray:
        return model(self.images, self.prompts).cpu().numpy()

    def tracking(self, model: RewardModel) -> float | None:
        return roc_auc(self.rewards(model), self.aligned)


def _agreement(ratings: pd.DataFrame) -> dict:
    units = [list(group["label"]) for _, group in ratings.groupby(["run_dir", "sample_id"]) if len(group) > 1]
    return {"krippendorff_alpha": krippendorff_alpha_nominal(units), "pairwise": pairwise_agreement(units), "samples": len(units)}


def _at_least(value: float | None, target: float | None) -> bool:
    return value is not None and target is not None and value >= target


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
