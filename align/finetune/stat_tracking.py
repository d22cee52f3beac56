"""Per-prompt advantage normalisation with a buffer of recent rewards (DDPO, Black et al. 2023).

A prompt's advantage is (reward - mean) / std over the last `buffer_size` rewards seen for that
prompt, so easy and hard prompts pull on the model equally. Until a prompt has `min_count`
rewards, the whole batch's statistics stand in.
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
