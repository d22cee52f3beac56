"""The RewardModel contract fine-tuning relies on, and backbones from both libraries, on the shipped tiny CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from align.models import SHIPPED
from align.shapes.prompts import parse_prompt, scene_for
from align.shapes.world import render
from reward_models.backbones import BackboneConfig, ClipBackbone
from reward_models.config import HeadConfig
from reward_models.ddpo_adapter import ddpo_reward_fn
from reward_models.errors import RewardModelError
from reward_models.reward_model import RewardModel

PROMPTS = ["two red circles on a white background", "a blue square", "three triangles", "a diamond on a gray background"]


@pytest.fixture(scope="module")
def model() -> RewardModel:
    torch.manual_seed(0)
    return RewardModel(ClipBackbone(BackboneConfig(name=f"local-dir:{SHIPPED['shapes-tiny-clip']}")), HeadConfig(hidden=32))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    import random

    rng = random.Random(0)
    return [render(scene_for(parse_prompt(p), rng)) for p in PROMPTS]


def as_tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(i, dtype=np.float32) / 255).permute(2, 0, 1) for i in images])


def test_rewards_are_one_per_pair_without_grad(model, images):
    rewards = model(images, PROMPTS)
    assert rewards.shape == (4,) and rewards.dtype == torch.float32 and not rewards.requires_grad
    assert rewards.unique().numel() == 4


def test_batching_and_input_kind_do_not_change_rewards(model, images):
    whole = model(images, PROMPTS)
    assert torch.allclose(model(images, PROMPTS, batch_size=1), whole, atol=1e-5)
    assert torch.allclose(model(as_tensor(images), PROMPTS), whole, atol=1e-4)


def test_differentiable_rewards_reach_the_pixels(model, images):
    pixels = as_tensor(images).requires_grad_(True)
    model(pixels, PROMPTS, differentiable=True).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_larger_images_are_resized(model, images):
    big = torch.nn.functional.interpolate(as_tensor(images), size=(128, 128), mode="nearest")
    assert torch.allclose(model(big, PROMPTS), model(images, PROMPTS), atol=0.05)


def test_save_and_load_round_trip(model, images, tmp_path):
    model.metrics = {"note": "kept"}
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert torch.allclose(loaded(images, PROMPTS), model(images, PROMPTS))
    assert loaded.metrics == {"note": "kept"}


def test_changed_backbone_weights_are_refused(model, tmp_path):
    import json

    model.save_pretrained(tmp_path / "rm")
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    config["backbone_fingerprint"] = "0" * 16
    (tmp_path / "rm" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RewardModelError, match="has changed"):
        RewardModel.from_pretrained(tmp_path / "rm")


def test_ddpo_adapter_has_trl_signature(model, images):
    rewards, metadata = ddpo_reward_fn(model)(as_tensor(images), tuple(PROMPTS), tuple({} for _ in PROMPTS))
    assert torch.allclose(rewards, model(images, PROMPTS), atol=1e-4) and isinstance(metadata, dict)


def test_unknown_open_clip_name():
    with pytest.raises(RewardModelError, match="does not know a model named 'ViT-Nope-99'"):
        ClipBackbone(BackboneConfig(name="ViT-Nope-99"))


def test_unfreezing_last_blocks_makes_only_them_trainable():
    backbone = ClipBackbone(BackboneConfig(name=f"local-dir:{SHIPPED['shapes-tiny-clip']}", unfreeze_last_blocks=1))
    names = list(backbone.trainable_parameters())
    assert any("visual.transformer.resblocks.3." in n for n in names)
    assert any(n.startswith("transformer.resblocks.2.") for n in names)
    assert not any("resblocks.0." in n for n in names)


def test_transformers_clip_directory(tmp_path, images):
    """A transformers CLIPModel folder (random small weights, the shipped tokenizer) behind the same interface."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config={**small, "max_position_embeddings": 77},
                        vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(tmp_path / "clip")
    tokenizer = CLIPTokenizer.from_pretrained(SHIPPED["shapes-tiny-sd"] / "tokenizer")
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(tmp_path / "clip")

    backbone = ClipBackbone(BackboneConfig(kind="transformers", name=str(tmp_path / "clip"), unfreeze_last_blocks=1))
    from_pil = backbone.encode_images(images)
    assert from_pil.shape == (4, 16) and torch.allclose(from_pil.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(backbone.encode_images(as_tensor(images)), from_pil, atol=0.05)
    assert backbone.encode_texts(PROMPTS).shape == (4, 16)
    assert any("encoder.layers.1." in n for n in backbone.trainable_parameters())
    assert not any("encoder.layers.0." in n for n in backbone.trainable_parameters())
    with_patches = backbone.encode_images(images, patches=True)
    assert with_patches.shape == (4, 1 + 16, 16)  # 32 px / 8 px patches: 16 tokens, each in the joint space
    assert torch.allclose(with_patches[:, 0], from_pil, atol=1e-5)


def test_attribute_probabilities_and_the_combined_reward(model, images):
    probabilities = model.attribute_probabilities(images, PROMPTS)
    assert list(probabilities) == ["thumbs_up", "count", "shape", "colour", "background", "malformed"]
    together = torch.stack(list(probabilities.values())).prod(0)
    assert torch.allclose(torch.sigmoid(model(images, PROMPTS)), together, atol=1e-5)  # combine: product


@pytest.mark.parametrize("kind", ["open_clip", "transformers"])
def test_patch_token_head_scores_saves_and_differentiates(kind, tmp_path, images):
    name = f"local-dir:{SHIPPED['shapes-tiny-clip']}"
    if kind == "transformers":
        test_transformers_clip_directory(tmp_path, images)
        name = str(tmp_path / "clip")
    torch.manual_seed(0)
    model = RewardModel(ClipBackbone(BackboneConfig(kind=kind, name=name)), HeadConfig(hidden=32, image_features="patches"))
    pixels = as_tensor(images).requires_grad_(True)
    rewards = model(pixels, PROMPTS, differentiable=True)
    rewards.sum().backward()
    assert rewards.shape == (4,) and pixels.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "rm")
    assert torch.allclose(RewardModel.from_pretrained(tmp_path / "rm")(images, PROMPTS), model(images, PROMPTS), atol=1e-5)
