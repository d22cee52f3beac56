"""The reward as TRL 0.23 DDPOTrainer expects it, without importing trl.

DDPOTrainer calls `reward_fn(images, prompts, prompt_metadata)` with the decoded images (a
float tensor in [0, 1], N x 3 x H x W), a tuple of prompts and a tuple of per-prompt
metadata, and wants back `(rewards, reward_metadata)`.

    reward_fn = ddpo_reward_fn(RewardModel.from_pretrained("runs/reward"))
    DDPOTrainer(config, reward_fn, prompt_fn, pipeline)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from reward_models.reward_model import RewardModel


def ddpo_reward_fn(model: RewardModel, batch_size: int = 64) -> Callable[..., tuple[torch.Tensor, dict]]:
    def reward_fn(images: torch.Tensor, prompts: Sequence[str], prompt_metadata: Sequence[Any]) -> tuple[torch.Tensor, dict]:
        rewards = model(images, list(prompts), batch_size=batch_size)
        return rewards.float().cpu(), {"reward_model": "learned CLIP reward (logit)"}

    return reward_fn
