"""The reward model's configuration: backbone, head and training, as checked dataclasses.

`world` names the prompt world of the caller (the shapes world supplies prompt perturbations
for the auxiliary task and the oracle's verdicts); this package only passes the name along.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reward_models.backbones import BackboneConfig


@dataclass
class HeadConfig:
    hidden: int = field(default=256, metadata={"min": 0})  # 0: a linear head
    dropout: float = field(default=0.1, metadata={"min": 0, "below": 1})
    similarity_skip: bool = True  # add a learned scale of cos(image, text), CLIP score's signal, to the logit
    attributes: bool = True  # also predict, per attribute, whether it is right (learned from reason tags)
    combine: Literal["thumbs", "product"] = "product"  # the reward: thumbs-up logit, or logit of P(up) x P(all right)
    image_features: Literal["pooled", "patches"] = "pooled"  # pooled embedding, or with the patch tokens too
    patch_hidden: int = field(default=128, metadata={"min": 1})  # width of the per-patch branch (image_features: patches)


@dataclass
class TrainConfig:
    loss: Literal["bce", "mse"] = "bce"
    class_balance: bool = True  # weight positives and negatives equally in the loss
    ratings: Literal["mean", "per_rater"] = "mean"  # one soft target per sample, or one row per rating
    attribute_weight: float = field(default=1.0, metadata={"min": 0})  # weight of the per-attribute losses (head.attributes)
    aux_weight: float = field(default=0.5, metadata={"min": 0})  # weight of the prompt-classification task (0: off)
    aux_perturbations: int = field(default=4, metadata={"min": 0})  # perturbed prompts per positive sample
    compare_without_aux: bool = True  # also train with aux_weight 0 and record it, for the report
    lr: float = field(default=1e-3, metadata={"above": 0})
    weight_decay: float = field(default=1e-4, metadata={"min": 0})
    batch_size: int = field(default=128, metadata={"min": 1})
    max_epochs: int = field(default=300, metadata={"min": 1})
    patience: int = field(default=25, metadata={"min": 1})  # epochs without a better validation loss before stopping
    val_fraction: float = field(default=0.15, metadata={"above": 0, "below": 1})  # of the training prompts, for early stopping
    # of all prompts, only when the labels mark no held-out split
    heldout_fraction: float = field(default=0.2, metadata={"above": 0, "below": 1})
    encode_batch_size: int = field(default=64, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})


@dataclass
class RewardConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    world: str = "shapes"  # the caller's prompt world: "shapes", or "none" for no perturbations / oracle
    device: str = "auto"
