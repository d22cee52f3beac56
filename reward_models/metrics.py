"""Binary-label metrics of a score: accuracy, ROC-AUC, calibration error, per category.

ROC-AUC and the ROC curve are scikit-learn's; scikit-learn has no expected calibration error,
so that one is written here (equal-width bins, as in Guo et al. 2017).
"""

from __future__ import annotations

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
    scores: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, threshold: float, categories: np.ndarray
) -> dict:
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) > threshold).astype(int)
    correct = predicted == labels
    return {
        "n": int(len(labels)),
        "positive_rate": float(labels.mean()) if len(labels) else None,
        "accuracy": float(correct.mean()) if len(labels) else None,
        "roc_auc": roc_auc(scores, labels),
        "calibration_error": calibration_error(probabilities, labels) if len(labels) else None,
        "threshold": float(threshold),
        "accuracy_by_category": {c: float(correct[categories == c].mean()) for c in sorted(set(categories))},
    }
