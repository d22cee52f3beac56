"""The `demo` config: how many images each stage draws and rates, and each stage's own overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from align.errors import BadInput


@dataclass
class DemoConfig:
    model: str = "shapes-tiny-sd"
    train_images_per_prompt: int = 4
    heldout_images_per_prompt: int = 5
    round2_images_per_prompt: int = 2
    train_seed: int = 0
    heldout_seed: int = 1000
    round2_seed: int = 500_000
    seen_images_per_prompt: int = 2  # every model on the training prompts, with fresh seeds (the seen split)
    seen_seed: int = 200_000
    seen_prompt_count: int = 0  # 0: every training prompt; n: a fixed sample of n of them
    best_of: int = 4  # the best-of-n model: n candidates per image from the baseline, picked by the round-1 reward
    raters: int = 3
    noise: float = 0.1
    train_overlap: int = 2
    heldout_overlap: int = 2  # held-out samples rated by two raters, so agreement can be measured
    generate: list[str] = field(default_factory=list)  # overrides for every `generate`
    reward: list[str] = field(default_factory=list)  # overrides for both `train-reward` runs
    ddpo: list[str] = field(default_factory=list)  # overrides of configs/shapes/ddpo.yaml
    rwr: list[str] = field(default_factory=list)  # overrides of configs/shapes/rwr.yaml

    def check(self) -> None:
        counts = (self.train_images_per_prompt, self.heldout_images_per_prompt, self.round2_images_per_prompt,
                  self.seen_images_per_prompt)
        if min(counts) < 1:
            raise BadInput("train_images_per_prompt, heldout_images_per_prompt, round2_images_per_prompt and"
                           " seen_images_per_prompt must be at least 1")
        if self.best_of < 2:
            raise BadInput(f"best_of must be at least 2 (best-of-1 is the baseline), got {self.best_of}")
        if self.seen_prompt_count < 0:
            raise BadInput(f"seen_prompt_count must be 0 (every training prompt) or more, got {self.seen_prompt_count}")
        if not 1 <= self.train_overlap <= self.raters or not 1 <= self.heldout_overlap <= self.raters:
            raise BadInput(f"train_overlap and heldout_overlap must be between 1 and raters ({self.raters})")
        if not 0 <= self.noise <= 1:
            raise BadInput(f"noise is a probability between 0 and 1, got {self.noise}")
