"""The ranking metrics the reward is judged by, against counting every case by hand."""

from __future__ import annotations

import itertools

import numpy as np

from reward_models.metrics import best_of_n, within_prompt_roc_auc


def test_best_of_n_counts_every_subset_of_each_pool():
    rng = np.random.default_rng(0)
    scores, truths = rng.normal(size=42), rng.integers(0, 2, 42).astype(float)
    groups = np.repeat(np.arange(7), 6)
    for n in range(1, 7):
        by_hand = np.mean([np.mean([truths[g * 6 : g * 6 + 6][list(c)][np.argmax(scores[g * 6 : g * 6 + 6][list(c)])]
                                    for c in itertools.combinations(range(6), n)]) for g in range(7)])
        assert abs(best_of_n(scores, truths, groups, n) - by_hand) < 1e-12, n
    assert abs(best_of_n(scores, truths, groups, 1) - truths.mean()) < 1e-12  # one random image
    assert best_of_n(scores, truths, groups, 7) is None  # no pool holds 7


def test_within_prompt_auc_only_pairs_images_of_one_prompt():
    # Across prompts the scores are reversed (prompt b's images all score higher); within each, perfect.
    scores = np.array([0.2, 0.1, 0.9, 0.8])
    labels = np.array([1, 0, 1, 0])
    prompts = np.array(["a", "a", "b", "b"])
    assert within_prompt_roc_auc(scores, labels, prompts) == 1.0
    assert within_prompt_roc_auc(np.array([0.1, 0.1, 0.5, 0.9]), labels, prompts) == 0.25  # a tie, and a wrong order
    assert within_prompt_roc_auc(scores, np.array([1, 1, 0, 0]), prompts) is None  # no prompt has both kinds
