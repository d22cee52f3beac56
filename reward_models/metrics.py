"""Binary-label metrics of a score: accuracy, ROC-AUC, calibration error, per category.

ROC-AUC and the ROC curve are scikit-learn's; scikit-learn has no expected calibration error,
so that one is written here (equal-width bins, as in Guo et al. 2017).
"""

from __future__ import annotations

from math import comb

import numpy as np
import torch
from sklearn import metrics

CALIBRATION_BINS = 10


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half); None with one class."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    return float(metrics.roc_auc_score(labels, np.asarray(scores, float)))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    fpr, tpr, _ = metrics.roc_curve(np.asarray(labels).astype(bool), np.asarray(scores, float), drop_intermediate=False)
    return fpr, tpr


def within_prompt_roc_auc(scores: np.ndarray, labels: np.ndarray, prompts: np.ndarray) -> float | None:
    """ROC-AUC over pairs of images of one prompt, one positive and one negative (ties count half):
    how often the score picks the better of two images of the same prompt, as fine-tuning needs."""
    scores, labels, prompts = np.asarray(scores, float), np.asarray(labels).astype(bool), np.asarray(prompts)
    wins = pairs = 0.0
    for prompt in np.unique(prompts):
        mine = prompts == prompt
        positive, negative = scores[mine & labels], scores[mine & ~labels]
        difference = positive[:, None] - negative[None, :]
        wins += (difference > 0).sum() + 0.5 * (difference == 0).sum()
        pairs += difference.size
    return float(wins / pairs) if pairs else None


def best_of_n(scores: np.ndarray, truths: np.ndarray, groups: np.ndarray, n: int) -> float | None:
    """Expected truth of the best-scored of n images drawn at random from a group (a prompt's pool),
    averaged over the groups with at least n images: best-of-n sampling, measured on a fixed pool.

    In a pool of m sorted by score, the j-th best is the best of a random n-subset with
    probability C(m-1-j, n-1) / C(m, n), so every subset is counted without drawing any.
    """
    scores, truths, groups = np.asarray(scores, float), np.asarray(truths, float), np.asarray(groups)
    values = []
    for group in np.unique(groups):
        mine = groups == group
        ranked = truths[mine][np.argsort(-scores[mine], kind="stable")]
        m = len(ranked)
        if m >= n:
            weights = np.array([comb(m - 1 - j, n - 1) for j in range(m)], float) / comb(m, n)
            values.append(float(weights @ ranked))
    return float(np.mean(values)) if values else None


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: |mean prediction - positive rate| per bin, weighted by bin size."""
    probabilities, labels = np.asarray(probabilities, float), np.asarray(labels, float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(probabilities[in_bin].mean() - labels[in_bin].mean())
    return float(error)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest accuracy on these (training) scores."""
    candidates = np.unique(scores)
    middles = np.concatenate([[candidates[0] - 1], (candidates[1:] + candidates[:-1]) / 2, [candidates[-1] + 1]])
    labels = np.asarray(labels).astype(bool)
    accuracies = [((scores > t) == labels).mean() for t in middles]
    return float(middles[int(np.argmax(accuracies))])


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """sigmoid(a * score + b) fitted to the labels by logistic regression, for calibrated probabilities."""
    x = torch.tensor((np.asarray(scores, float) - np.mean(scores)) / (np.std(scores) + 1e-8), dtype=torch.float64)
    y = torch.tensor(np.asarray(labels), dtype=torch.float64)
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=100)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], y)
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = params.detach().tolist()
    scale = float(np.std(scores)) + 1e-8
    return a / scale, b - a * float(np.mean(scores)) / scale


def platt_probabilities(scores: np.ndarray, platt: tuple[float, float]) -> np.ndarray:
    return 1 / (1 + np.exp(-(platt[0] * np.asarray(scores) + platt[1])))


def score_metrics(
    scores: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, threshold: float, categories: np.ndarray,
    prompts: np.ndarray | None = None,
) -> dict:
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) > threshold).astype(int)
    correct = predicted == labels
    return {
        "n": len(labels),
        "positive_rate": float(labels.mean()) if len(labels) else None,
        "accuracy": float(correct.mean()) if len(labels) else None,
        "roc_auc": roc_auc(scores, labels),
        "within_prompt_roc_auc": within_prompt_roc_auc(scores, labels, prompts) if prompts is not None else None,
        "calibration_error": calibration_error(probabilities, labels) if len(labels) else None,
        "threshold": float(threshold),
        "accuracy_by_category": {c: float(correct[categories == c].mean()) for c in sorted(set(categories))},
    }
