"""The shapes world: renders, prompts and their held-out split, and the oracle's accuracy."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFilter

from align.shapes.oracle import judge, parse_image
from align.shapes.prompts import CATEGORIES, PromptSpec, all_specs, parse_prompt, prompt_set, scene_for
from align.shapes.world import BACKGROUNDS, COLORS, GAP, SHAPES, Scene, SceneObject, render


def test_vocabulary_is_wide_enough():
    assert len(SHAPES) >= 3 and len(COLORS) >= 5 and len(BACKGROUNDS) >= 3
    assert not set(BACKGROUNDS.values()) & set(COLORS.values())


def test_scenes_have_one_to_three_objects_in_a_row_apart():
    rng = random.Random(1)
    for spec in all_specs() * 5:
        scene = scene_for(spec, rng, allow_heldout=True)
        assert len(scene.objects) == spec.count
        for a in scene.objects:
            assert 0 <= a.x and a.x + a.size <= 64 and 0 <= a.y and a.y + a.size <= 64
        for left, right in zip(scene.objects, scene.objects[1:]):  # left to right, each in its own column
            assert left.x + left.size + GAP <= right.x


def test_prompts_cover_four_categories_and_round_trip():
    prompts = prompt_set("all")
    assert len({p.text for p in prompts}) == len(prompts) >= 250
    assert {p.category for p in prompts} == set(CATEGORIES)
    for prompt in prompts:
        spec = parse_prompt(prompt.text)
        assert spec is not None and spec.text == prompt.text and spec.category == prompt.category
    examples = {p.text for p in prompts}
    assert {"three circles", "a red square", "a triangle on a black background",
            "two blue squares on a white background"} <= examples


def test_heldout_split_shares_no_attribute_pair_with_training():
    train, heldout = prompt_set("train"), prompt_set("heldout")
    assert train and heldout and not {p.text for p in train} & {p.text for p in heldout}
    assert {p.category for p in heldout} == set(CATEGORIES)

    def pairs(spec: PromptSpec) -> set:
        return {("cs", spec.color, spec.shape), ("ns", spec.count, spec.shape), ("sb", spec.shape, spec.background)}

    heldout_pairs = set().union(*(pairs(parse_prompt(p.text)) for p in heldout))
    train_pairs = set().union(*(pairs(parse_prompt(p.text)) for p in train))
    # every held-out prompt has at least one pair no training prompt has
    for prompt in heldout:
        assert pairs(parse_prompt(prompt.text)) - train_pairs, prompt.text
    assert heldout_pairs - train_pairs


def test_training_scenes_never_show_a_heldout_combination():
    rng = random.Random(2)
    for spec in [s for s in all_specs() if not s.heldout]:
        for _ in range(3):
            scene = scene_for(spec, rng)
            for obj in scene.objects:
                shown = PromptSpec(len(scene.objects), obj.shape, obj.color, scene.background)
                assert not shown.heldout, (spec.text, scene)


def test_oracle_is_right_on_clean_renders():
    rng = random.Random(3)
    specs = all_specs()
    right = 0
    trials = 1000
    for _ in range(trials):
        spec = rng.choice(specs)
        right += judge(render(scene_for(spec, rng, allow_heldout=True)), spec).aligned
    assert right / trials >= 0.99


def test_oracle_rejects_each_wrong_attribute():
    scene = Scene("white", (SceneObject("square", "blue", 10, 10, 16), SceneObject("square", "blue", 36, 36, 16)))
    image = render(scene)
    assert judge(image, "two blue squares on a white background").aligned
    verdict = judge(image, "three red circles on a black background")
    assert verdict.attributes == {"count": False, "shape": False, "color": False, "background": False}
    assert judge(image, "two squares").attributes["color"] is None
    assert not judge(image, "two blue squares on a gray background").aligned
    assert not judge(image, "two blue diamonds on a white background").aligned


def soften(image: Image.Image, seed: int) -> Image.Image:
    """What generated images do to clean edges: blur, pixel noise, a few stray pixels."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
    pixels += rng.normal(0, 10, pixels.shape)
    for y, x in rng.integers(0, 64, size=(6, 2)):
        pixels[y, x] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_oracle_is_robust_to_soft_edges_noise_and_stray_pixels():
    rng = random.Random(4)
    specs = all_specs()
    trials = 500
    right = sum(
        judge(soften(render(scene_for(spec, rng, allow_heldout=True)), i), spec).aligned
        for i, spec in enumerate(rng.choice(specs) for _ in range(trials))
    )
    assert right / trials >= 0.95


def test_unparseable_images():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert not parse_image(noise).parseable
    blank = Image.new("RGB", (64, 64), BACKGROUNDS["gray"])
    assert not parse_image(blank).parseable
    assert not judge(blank, "one circle").aligned


def test_oracle_refuses_prompts_outside_the_world():
    with pytest.raises(ValueError, match="not a shapes-world prompt"):
        judge(Image.new("RGB", (64, 64)), "a photo of a dog")


def test_object_counts_in_clean_renders_are_exact():
    rng = random.Random(5)
    counts = Counter()
    for spec in all_specs()[:60]:
        parsed = parse_image(render(scene_for(spec, rng, allow_heldout=True)))
        counts[len(parsed.objects) == spec.count] += 1
    assert counts[False] == 0
