"""Advantages: how much better an image is than others of its prompt.

Two ways, both so that easy and hard prompts pull on the model equally:

- PerPromptStatTracker (DDPO, Black et al. 2023): (reward - mean) / std over the last
  `buffer_size` rewards seen for that prompt; until a prompt has `min_count` rewards, the whole
  batch's statistics stand in (with many prompts and few samples, that is most of the time).
- group_advantages (grouped sampling, as GRPO does): each epoch draws k images of each of its
  prompts, and each image is compared with the k - 1 others drawn with it, at once.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class PerPromptStatTracker:
    def __init__(self, buffer_size: int, min_count: int):
        self.buffer_size = buffer_size
        self.min_count = min_count
        self.buffers: dict[str, deque] = {}

    def update(self, prompts: list[str], rewards: np.ndarray) -> np.ndarray:
        rewards = np.asarray(rewards, dtype=np.float64)
        advantages = np.empty_like(rewards)
        for prompt in dict.fromkeys(prompts):
            rows = np.array([p == prompt for p in prompts])
            buffer = self.buffers.setdefault(prompt, deque(maxlen=self.buffer_size))
            buffer.extend(rewards[rows].tolist())
            reference = np.asarray(buffer) if len(buffer) >= self.min_count else rewards
            advantages[rows] = (rewards[rows] - reference.mean()) / (reference.std() + 1e-6)
        return advantages

    # Saved with the checkpoint (accelerate's register_for_checkpointing), so a resumed run
    # normalises exactly as an uninterrupted one.
    def state_dict(self) -> dict:
        return {"buffers": {prompt: list(buffer) for prompt, buffer in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = {p: deque(values, maxlen=self.buffer_size) for p, values in state["buffers"].items()}


def group_advantages(rewards: np.ndarray, group_size: int) -> tuple[np.ndarray, int]:
    """(reward - group mean) / group std for consecutive groups of `group_size` rewards, and the
    number of flat groups: all rewards equal, so no image is better than another (advantage 0)."""
    groups = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    spread = groups.std(axis=1, keepdims=True)
    flat = spread[:, 0] < 1e-8
    advantages = np.where(flat[:, None], 0.0, (groups - groups.mean(axis=1, keepdims=True)) / np.maximum(spread, 1e-8))
    return advantages.reshape(-1), int(flat.sum())
