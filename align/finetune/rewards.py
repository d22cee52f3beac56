"""Reward functions with ddpo-pytorch's contract: `reward_fn(images, prompts, metadata) -> rewards`.

images: float tensor N x 3 x H x W in [0, 1]; rewards: 1-D float tensor on the CPU. The learned
reward also has `reward_fn.differentiable(images, prompts)`: rewards on the images' device
with gradients to the pixels, for reward backpropagation.

    learned  a reward_models RewardModel directory (the default: what the raters taught)
    oracle   the shapes world's oracle verdict, 1 aligned / 0 not: an upper bound for experiments
    clip     CLIP score, the baseline the learned reward is compared against
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from align.errors import BadInput
from align.finetune.config import RewardSettings

RewardFn = Callable[[torch.Tensor, list[str], list[dict]], torch.Tensor]


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def oracle_reward() -> RewardFn:
    from align.shapes.oracle import judge
    from align.shapes.prompts import parse_prompt

    def reward_fn(images, prompts, metadata):
        specs = [parse_prompt(p) for p in prompts]
        if None in specs:
            raise BadInput(f"the oracle reward only judges shapes-world prompts, not {prompts[specs.index(None)]!r}")
        return torch.tensor([float(judge(image, spec).aligned) for image, spec in zip(to_pil(images), specs)])

    return reward_fn


def clip_reward(settings: RewardSettings, device: torch.device) -> RewardFn:
    from align.models import clip_backbone_config
    from reward_models.backbones import ClipBackbone
    from reward_models.clip_score import clip_scores

    backbone = ClipBackbone(clip_backbone_config(settings.clip_model, settings.clip_pretrained), device)

    def reward_fn(images, prompts, metadata):
        return clip_scores(backbone, to_pil(images), list(prompts)).cpu()

    return reward_fn


def learned_reward(path: str, device: torch.device) -> RewardFn:
    from reward_models.errors import RewardModelError
    from reward_models.reward_model import RewardModel

    try:
        model = RewardModel.from_pretrained(path, device)
    except RewardModelError:
        raise
    except Exception as exc:  # a corrupt file fails in json, safetensors or torch, each with its own type
        raise BadInput(f"reward model directory {path} does not load: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    def reward_fn(images, prompts, metadata):
        return model(images.float(), list(prompts)).float().cpu()

    reward_fn.differentiable = lambda images, prompts: model(images.float(), list(prompts), differentiable=True)
    return reward_fn


def make_reward_fn(settings: RewardSettings, device: torch.device) -> RewardFn:
    if settings.kind == "oracle":
        return oracle_reward()
    if settings.kind == "clip":
        return clip_reward(settings, device)
    return learned_reward(settings.path, device)
