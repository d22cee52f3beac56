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
    hidden: int = 256  # 0: a linear head
    dropout: float = 0.1
    similarity_skip: bool = True  # add a learned scale of cos(image, text), CLIP score's signal, to the logit
    attributes: bool = True  # also predict, per attribute, whether it is right (learned from reason tags)
    combine: Literal["thumbs", "product"] = "product"  # the reward: thumbs-up logit, or logit of P(up) x P(all right)
    image_features: Literal["pooled", "patches"] = "pooled"  # pooled embedding, or with the patch tokens too
    patch_hidden: int = 128  # width of the per-patch branch (image_features: patches)


@dataclass
class TrainConfig:
    loss: Literal["bce", "mse"] = "bce"
    class_balance: bool = True  # weight positives and negatives equally in the loss
    ratings: Literal["mean", "per_rater"] = "mean"  # one soft target per sample, or one row per rating
    attribute_weight: float = 1.0  # weight of the per-attribute losses (head.attributes)
    aux_weight: float = 0.5  # weight of the prompt-classification task (0: off)
    aux_perturbations: int = 4  # perturbed prompts per positive sample
    compare_without_aux: bool = True  # also train with aux_weight 0 and record it, for the report
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 25  # epochs without a better validation loss before stopping
    val_fraction: float = 0.15  # of the training prompts, for early stopping
    heldout_fraction: float = 0.2  # of all prompts, only when the labels mark no held-out split
    encode_batch_size: int = 64
    seed: int = 0


@dataclass
class RewardConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    world: str = "shapes"  # the caller's prompt world: "shapes", or "none" for no perturbations / oracle
    device: str = "auto"
