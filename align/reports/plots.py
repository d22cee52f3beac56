"""The reports' pictures as PNG data URIs: ROC curves, reward vs CLIP score, per-category bars,
and the demo's training curves and reward-hacking trajectory."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from reward_models.metrics import roc_auc, roc_curve  # noqa: E402

COLORS = {"reward": "#1f77b4", "reward without aux": "#9ecae1", "CLIP score": "#ff7f0e"}
METHOD_COLORS = {"DDPO": "#1f77b4", "RWR": "#2ca02c", "Reward backprop": "#d62728",
                 "DDPO, oracle reward": "#17becf", "RWR, oracle reward": "#bcbd22"}


def data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_uri(path: str, size: int = 128) -> str:
    """A thumbnail, enlarged with nearest-neighbour so 64 px scenes stay crisp."""
    with Image.open(path) as image:
        thumbnail = image.convert("RGB").resize((size, size), Image.NEAREST)
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def roc_figure(panels: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]) -> str:
    """One panel per truth (raters, oracle): a ROC curve per scorer, AUC in the legend."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, (truth, scorers)) in zip(axes[0], panels.items()):
        for name, scores in scorers.items():
            fpr, tpr = roc_curve(scores, truth)
            ax.plot(fpr, tpr, color=COLORS.get(name), label=f"{name} (AUC {roc_auc(scores, truth):.3f})", lw=2)
        ax.plot([0, 1], [0, 1], color="#bbb", ls="--", lw=1, label="chance (AUC 0.5)")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
    return data_uri(figure)


def scatter_figure(clip: np.ndarray, reward: np.ndarray, thumbs_up_share: np.ndarray) -> str:
    figure, ax = plt.subplots(figsize=(6.4, 4.8))
    points = ax.scatter(clip, reward, c=thumbs_up_share, cmap="RdYlGn", vmin=0, vmax=1, s=16, alpha=0.8,
                        edgecolors="none")
    figure.colorbar(points, ax=ax, label="share of raters who gave a thumbs up")
    ax.set(xlabel="CLIP score (100 x cosine)", ylabel="learned reward (logit)",
           title="Held-out samples: learned reward against CLIP score")
    return data_uri(figure)


def best_of_figure(curves: dict[str, dict[str, list[float]]]) -> str:
    """One panel per split: aligned share of the best of n images, per scorer, against n."""
    figure, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.2), squeeze=False)
    styles = {"learned reward": ("#1f77b4", "-"), "CLIP score": ("#ff7f0e", "-"), "oracle (ceiling)": ("#888", "--")}
    for ax, (split, by_scorer) in zip(axes[0], curves.items()):
        for scorer, (color, line) in styles.items():
            values = 100 * np.asarray(by_scorer[scorer])
            ax.plot(range(1, len(values) + 1), values, line, color=color, marker="o", lw=2, label=scorer)
        ax.set(xlabel="n (images drawn, the best one kept)", ylabel="aligned images (%)", title=split, ylim=(0, 100))
        ax.legend(loc="lower right", fontsize=8)
    return data_uri(figure)


def category_figure(accuracies: dict[str, dict[str, float]], title: str) -> str:
    """Grouped bars: accuracy per prompt category for each scorer."""
    categories = sorted({c for by_category in accuracies.values() for c in by_category})
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / max(len(accuracies), 1)
    for i, (name, by_category) in enumerate(accuracies.items()):
        x = np.arange(len(categories)) + (i - (len(accuracies) - 1) / 2) * width
        ax.bar(x, [by_category.get(c, np.nan) for c in categories], width, label=name, color=COLORS.get(name))
    ax.set_xticks(np.arange(len(categories)), categories)
    ax.set(ylabel="accuracy", ylim=(0, 1), title=title)
    ax.axhline(0.5, color="#bbb", ls="--", lw=1)
    ax.legend(fontsize=8, loc="lower right")
    return data_uri(figure)


def png_uri(path) -> str:
    """A PNG file as it is (fine-tuning grids are already enlarged)."""
    with open(path, "rb") as file:
        return "data:image/png;base64," + base64.b64encode(file.read()).decode()


def sample_efficiency_figure(histories: dict[str, list[dict]], oracle_rewarded: set[str] = frozenset()) -> str:
    """Per fine-tuning run, against the reward queries spent: oracle alignment on both splits
    (with their intervals) and the mean learned reward, so reward hacking shows on the same axis.
    Runs in `oracle_rewarded` optimised the oracle's 0 / 1 verdict: no learned reward to plot."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10.4, 5.2))
    for method, history in histories.items():
        color = METHOD_COLORS.get(method)
        for split, style in (("unseen", "-"), ("seen", "--")):
            key = f"eval/{split}/oracle_alignment"
            points = [h for h in history if key in h]
            if not points:
                continue
            queries = [h["queries"] for h in points]
            left.plot(queries, [h[key] for h in points], style, marker="o", ms=4, color=color, label=f"{method}, {split}")
            if all(f"{key}_low" in h for h in points):
                left.fill_between(queries, [h[f"{key}_low"] for h in points], [h[f"{key}_high"] for h in points],
                                  color=color, alpha=0.12 if split == "unseen" else 0.06, lw=0)
        if method in oracle_rewarded:
            continue
        for key, what, style in (("reward/mean", "training samples", "-"), ("eval/unseen/reward_mean", "unseen", "--")):
            points = [(h["queries"], h[key]) for h in history if key in h]
            if points:
                right.plot(*zip(*points), style, marker="o", ms=4, color=color, label=f"{method}, {what}")
    left.set(xlabel="reward queries (images scored for training)", ylabel="oracle alignment", title="Oracle alignment")
    right.set(xlabel="reward queries (images scored for training)", ylabel="mean learned reward (logit)", title="Reward")
    for ax in (left, right):  # below the axes: with the oracle arms, ten lines would hide the curves
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return data_uri(figure)


def hacking_figure(histories: dict[str, list[dict]]) -> str:
    """Each evaluated epoch as a point (held-out reward, oracle alignment), joined in epoch order.

    Real progress moves up; reward hacking moves right and down."""
    figure, ax = plt.subplots(figsize=(6.4, 4.6))
    for method, history in histories.items():
        judged = [h for h in history if "eval/unseen/reward_mean" in h and "eval/unseen/oracle_alignment" in h]
        if not judged:
            continue
        x, y = [h["eval/unseen/reward_mean"] for h in judged], [h["eval/unseen/oracle_alignment"] for h in judged]
        ax.plot(x, y, marker="o", ms=5, color=METHOD_COLORS.get(method), label=method)
        for h, xi, yi in zip(judged, x, y):
            ax.annotate(str(h["epoch"]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="mean learned reward on unseen prompts (logit)", ylabel="oracle alignment on unseen prompts",
           title="Reward against oracle alignment, labelled by epoch")
    ax.legend(fontsize=8)
    return data_uri(figure)
