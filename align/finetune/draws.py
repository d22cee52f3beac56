"""Every random draw of on-policy fine-tuning, keyed by (seed, epoch, global sample index).

Never by process or batch: N processes then draw exactly the samples one process would, and a
resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import random


def draw_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 100_003 + epoch) * 10_000_019 + index


def prompt_of(prompts: list[str], seed: int, epoch: int, index: int, group_size: int) -> str:
    """The prompt of sample `index` of an epoch: its own draw, or its group's (k consecutive samples)."""
    if group_size:
        return random.Random(draw_seed(seed, epoch, 10**8 + index // group_size)).choice(prompts)
    return random.Random(draw_seed(seed, epoch, index)).choice(prompts)
