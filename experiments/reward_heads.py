"""Which reward head generalises to unseen prompts: reasons, patch tokens, and what limits them.

    python experiments/reward_heads.py [--labels runs/demo/round1/labels.parquet] [--seeds 5]

Hypotheses, each an arm trained on the demo's round-1 ratings (2,008 on training prompts,
10% noise) with `train.seed` 0..S-1 (the seed also redraws the validation prompts):
  - per-attribute heads learned from the reason tags rank the images of one prompt better
    than the thumbs alone (attributes: combine thumbs / product);
  - a head over the patch tokens, attending with the text, sees counts and shapes the pooled
    embedding loses (patches).
Three bounds say what limits any head on these features: "clean" trains on the oracle's
verdicts instead of the raters' (is it the label noise?), "pairs rated" moves half of the
held-out prompts into training and measures on the other half B (is it that no rater ever saw
the held-out attribute pairs?), and "same prompts" trains, with clean labels, on half of
every held-out prompt's images and measures on the other half (what do these features allow
at best, with no generalisation left to do?). Every arm is compared with the thumbs-only pooled head of the
same seed: mean difference over seeds with a 95% t-interval (paired by seed).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from align.models import clip_backbone_config
from align.shapes.oracle_labels import with_oracle_labels
from align.shapes.perturb import perturbations
from reward_models.backbones import ClipBackbone
from reward_models.config import HeadConfig, RewardConfig
from reward_models.embedding_cache import EmbeddingCache
from reward_models.labels import read_labels, split_prompts, training_rows
from reward_models.metrics import best_of_n, roc_auc, within_prompt_roc_auc
from reward_models.training import HeadTrainer, embed_everything, rewards_for, train_reward_model

ROOT = Path(__file__).resolve().parent.parent
ARMS = {
    "thumbs only (pooled)": dict(attributes=False),
    "attributes, combine thumbs": dict(attributes=True, combine="thumbs"),
    "attributes, combine product": dict(attributes=True, combine="product"),
    "patches, thumbs only": dict(attributes=False, image_features="patches"),
    "patches + attributes, product": dict(attributes=True, combine="product", image_features="patches"),
}
BOUNDS = ("clean", "pairs rated", "same prompts")


def measure(frame: pd.DataFrame, split: str) -> dict:
    samples = frame.drop_duplicates("image_path")
    r, y, prompts = samples["reward"].to_numpy(), samples["oracle_label"].to_numpy(), samples["prompt"].to_numpy()
    return {f"{split} AUC": roc_auc(r, y), f"{split} within-prompt AUC": within_prompt_roc_auc(r, y, prompts),
            f"{split} best-of-4": best_of_n(r, y, prompts, 4)}


def clean(labels: pd.DataFrame) -> pd.DataFrame:
    """The oracle's verdicts as labels: a simulated rater's reasons are the oracle's, a slip had none."""
    agree = labels["label"] == labels["oracle_label"]
    return labels.assign(label=labels["oracle_label"], reasons=[r if a else [] for r, a in zip(labels["reasons"], agree)])


def same_prompts_bound(labels: pd.DataFrame, config: RewardConfig) -> dict:
    """Clean labels; every other image of each held-out prompt trains, the rest is the test set."""
    labels = clean(labels)
    splits = split_prompts(labels, config.train.val_fraction, config.train.heldout_fraction, config.train.seed)
    part = labels["prompt"].map({p: name for name, prompts in splits.items() for p in prompts})
    second = labels.groupby("prompt")["image_path"].transform(lambda paths: paths.isin(paths.unique()[1::2]))
    labels = labels.assign(part=np.where((part == "test") & ~second, "train", part))
    texts = {run: list(part["prompt"].unique()) + [t for p in part["prompt"].unique() for t in perturbations(p)]
             for run, part in labels.groupby("run_dir")}
    features = embed_everything(labels, texts, EmbeddingCache(ClipBackbone(config.backbone)))
    perturbed = {p: perturbations(p) for p in labels["prompt"].unique()}
    trainer = HeadTrainer(config, training_rows(labels, "mean"), features, perturbed, torch.device("cpu"), progress=False)
    model, log = trainer.fit(config.train.aux_weight)
    test = labels[labels["part"] == "test"].drop_duplicates("image_path")
    test = test.assign(reward=rewards_for(model, trainer, test["image_path"], test["prompt"]))
    return {"head seconds": log["seconds"], **measure(test, "unseen")}


def run_arm(labels: pd.DataFrame, head: dict, seed: int, bound: str | None, halves: tuple[set, set]) -> dict:
    config = RewardConfig()
    config = replace(config, backbone=clip_backbone_config("shapes-tiny-clip"), device="cpu",
                     head=replace(HeadConfig(), **head), train=replace(config.train, seed=seed, compare_without_aux=False))
    if bound == "same prompts":
        return same_prompts_bound(labels, config)
    if bound == "clean":
        labels = clean(labels)
    if bound == "pairs rated":
        labels = labels.assign(split=np.where(labels["prompt"].isin(halves[0]), "train", labels["split"]))
    start = time.perf_counter()
    result = train_reward_model(labels, config, torch.device("cpu"), perturbations, progress=False)
    seconds = time.perf_counter() - start
    test = result.predictions
    row = {"head seconds": result.metrics["head_training_seconds"], "all seconds": seconds}
    row |= measure(test[test["prompt"].isin(halves[1])], "unseen B")
    if bound != "pairs rated":
        row |= measure(test, "unseen")
        v = result.metrics["validation"]["oracle"]["reward"]
        row |= {"seen-val AUC": v["roc_auc"], "seen-val within-prompt AUC": v["within_prompt_roc_auc"]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(ROOT / "runs/demo/round1/labels.parquet"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--arms", nargs="*", help="only these arms and bounds (default: all)")
    args = parser.parse_args()
    labels = with_oracle_labels(read_labels(args.labels))
    heldout = sorted(labels.loc[labels["split"] == "heldout", "prompt"].unique())
    order = np.random.default_rng(0).permutation(len(heldout))
    halves = ({heldout[i] for i in order[: len(heldout) // 2]}, {heldout[i] for i in order[len(heldout) // 2 :]})

    rows = []
    runs = [(name, head, None) for name, head in ARMS.items()]
    runs += [(f"bound: {bound}", ARMS["attributes, combine product"], bound) for bound in BOUNDS]
    runs = [run for run in runs if not args.arms or run[0] in args.arms]
    for name, head, bound in runs:
        for seed in range(args.seeds):
            rows.append({"arm": name, "seed": seed, **run_arm(labels, head, seed, bound, halves)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    result = summary(table)
    print("| arm | " + " | ".join(result.columns) + " |")
    print("|---" * (len(result.columns) + 1) + "|")
    for arm, line in result.iterrows():
        print(f"| {arm} | " + " | ".join("" if pd.isna(v) else str(v) for v in line) + " |")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean per arm, and for each metric the paired difference from the thumbs-only head with a 95% t-interval."""
    baseline = table[table["arm"] == next(iter(ARMS))].set_index("seed")
    lines = {}
    for arm, part in table.groupby("arm", sort=False):
        part = part.set_index("seed")
        line = {}
        for metric in [c for c in table.columns if c not in ("arm", "seed")]:
            values = part[metric].dropna()
            if values.empty:
                continue
            line[metric] = f"{values.mean():.3f}"
            if "seconds" not in metric and arm != baseline["arm"].iloc[0]:
                diff = (values - baseline.loc[values.index, metric]).to_numpy()
                half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
                line[metric] += f" ({diff.mean():+.3f} ± {half:.3f})"
        lines[arm] = line
    return pd.DataFrame(lines).T


if __name__ == "__main__":
    main()
