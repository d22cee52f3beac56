"""The `demo` config: how many images each stage draws and rates, and each stage's own overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from align.config import Checked
from align.errors import BadInput

# Each fine-tuned model of the demo: its run directory's name, label and `finetune` config (configs/shapes/<config>.yaml).
METHODS = {"ddpo": ("DDPO", "ddpo"), "rwr": ("RWR", "rwr"), "reward_backprop": ("Reward backprop", "reward_backprop")}
# The upper bound: the same runs with the oracle as reward. Reward backpropagation has none: the oracle has no gradient.
ORACLE_METHODS = {"ddpo_oracle": ("DDPO, oracle reward", "ddpo"), "rwr_oracle": ("RWR, oracle reward", "rwr")}


def heldout_run(model: str) -> str:
    """A model's run on the held-out prompts, in the demo directory: the baseline's is round 1's."""
    return "round1/heldout" if model == "baseline" else f"eval/{model}-heldout"


@dataclass
class DemoConfig(Checked):
    model: str = "shapes-tiny-sd"
    train_images_per_prompt: int = field(default=4, metadata={"min": 1})
    heldout_images_per_prompt: int = field(default=5, metadata={"min": 1})
    round2_images_per_prompt: int = field(default=2, metadata={"min": 1})
    # 0: every prompt of the set; n: a fixed sample of n of them (a smoke run: the quick demo)
    train_prompt_count: int = field(default=0, metadata={"min": 0})
    heldout_prompt_count: int = field(default=0, metadata={"min": 0})
    train_seed: int = field(default=0, metadata={"min": 0})
    heldout_seed: int = field(default=1000, metadata={"min": 0})
    round2_seed: int = field(default=500_000, metadata={"min": 0})
    # every model on the training prompts, with fresh seeds (the seen split)
    seen_images_per_prompt: int = field(default=2, metadata={"min": 1})
    seen_seed: int = field(default=200_000, metadata={"min": 0})
    seen_prompt_count: int = field(default=0, metadata={"min": 0})  # 0: every training prompt; n: a fixed sample of n of them
    # the best-of-n model: n candidates per image from the baseline, picked by the round-1 reward
    best_of: int = field(default=4, metadata={"min": 2})
    raters: int = field(default=3, metadata={"min": 1})
    noise: float = field(default=0.1, metadata={"min": 0, "max": 1})
    train_overlap: int = field(default=2, metadata={"min": 1})
    # held-out samples rated by two raters, so agreement can be measured
    heldout_overlap: int = field(default=2, metadata={"min": 1})
    generate: list[str] = field(default_factory=list)  # overrides for every `generate`
    reward: list[str] = field(default_factory=list)  # overrides for both `train-reward` runs
    ddpo: list[str] = field(default_factory=list)  # overrides of configs/shapes/ddpo.yaml
    rwr: list[str] = field(default_factory=list)  # overrides of configs/shapes/rwr.yaml
    reward_backprop: list[str] = field(default_factory=list)  # overrides of configs/shapes/reward_backprop.yaml
    # also DDPO and RWR with the oracle as reward (their own overrides, same budget), evaluated and compared like the rest
    oracle_arms: bool = False

    def methods(self) -> dict[str, tuple[str, str]]:
        """The fine-tuned models of this demo: run name -> (label, finetune config, whose overrides it takes)."""
        return {**METHODS, **(ORACLE_METHODS if self.oracle_arms else {})}

    def models(self) -> dict[str, str]:
        """Every model the demo compares, name -> label, in the tables' order."""
        return {"baseline": "Baseline", **{name: label for name, (label, _) in self.methods().items()}, "best_of": "Best-of-n"}

    def check(self) -> None:
        """What single bounds (align/config.py) cannot say."""
        if self.train_overlap > self.raters or self.heldout_overlap > self.raters:
            raise BadInput(f"train_overlap and heldout_overlap must be between 1 and raters ({self.raters})")
