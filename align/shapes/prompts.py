"""Captions of the shapes world in Lee et al. 2023's four categories, and the held-out split.

    count        "three circles"
    color        "a red square"
    background   "a triangle on a black background"
    combination  "two blue squares on a white background"

Held-out prompts contain an attribute pair (colour+shape, count+shape or shape+background)
that no training prompt, and no training scene, ever shows; they test generalisation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from align.shapes.world import BACKGROUNDS, COLORS, COUNTS, SHAPES, Scene, place_objects

CATEGORIES = ("count", "color", "background", "combination")

HELDOUT_COLOR_SHAPE = {("purple", "triangle"), ("orange", "circle"), ("green", "diamond"), ("yellow", "square")}
HELDOUT_COUNT_SHAPE = {(3, "diamond")}
HELDOUT_SHAPE_BACKGROUND = {("triangle", "white")}

_NUMBER_WORDS = {word: n for n, word in COUNTS.items()} | {"a": 1, "an": 1}
_PROMPT = re.compile(
    rf"^(?P<count>a|an|{'|'.join(COUNTS.values())}) "
    rf"(?:(?P<color>{'|'.join(COLORS)}) )?"
    rf"(?P<shape>{'|'.join(SHAPES)})s?"
    rf"(?: on an? (?P<background>{'|'.join(BACKGROUNDS)}) background)?$"
)


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for; colour and background are None when it does not say."""

    count: int
    shape: str
    color: str | None = None
    background: str | None = None

    @property
    def category(self) -> str:
        if self.color and self.background:
            return "combination"
        if self.color:
            return "color"
        if self.background:
            return "background"
        return "count"

    @property
    def heldout(self) -> bool:
        return (
            (self.color, self.shape) in HELDOUT_COLOR_SHAPE
            or (self.count, self.shape) in HELDOUT_COUNT_SHAPE
            or (self.shape, self.background) in HELDOUT_SHAPE_BACKGROUND
        )

    @property
    def text(self) -> str:
        noun = self.shape if self.count == 1 else self.shape + "s"
        if self.category == "count":
            return f"{COUNTS[self.count]} {noun}"
        if self.category == "color":
            return f"a {self.color} {noun}"
        if self.category == "background":
            return f"a {noun} on a {self.background} background"
        return f"{COUNTS[self.count]} {self.color} {noun} on a {self.background} background"


@dataclass(frozen=True)
class Prompt:
    text: str
    category: str
    split: str  # "train", "heldout", or "custom" for prompts outside the shapes grammar


def parse_prompt(text: str) -> PromptSpec | None:
    """The spec behind a shapes-world prompt, or None if the text is not one."""
    match = _PROMPT.match(text.strip().lower())
    if not match:
        return None
    count = _NUMBER_WORDS[match["count"]]
    return PromptSpec(count, match["shape"], match["color"], match["background"])


def all_specs() -> list[PromptSpec]:
    """Every prompt of the world, in a fixed order."""
    specs = [PromptSpec(n, s) for n in COUNTS for s in SHAPES]
    specs += [PromptSpec(1, s, color=c) for c in COLORS for s in SHAPES]
    specs += [PromptSpec(1, s, background=b) for b in BACKGROUNDS for s in SHAPES]
    specs += [PromptSpec(n, s, c, b) for n in COUNTS for c in COLORS for s in SHAPES for b in BACKGROUNDS]
    return specs


def prompt_of(spec: PromptSpec) -> Prompt:
    return Prompt(spec.text, spec.category, "heldout" if spec.heldout else "train")


def prompt_set(name: str) -> list[Prompt]:
    """A named set: "train", "heldout" or "all"."""
    prompts = [prompt_of(spec) for spec in all_specs()]
    if name == "all":
        return prompts
    if name in ("train", "heldout"):
        return [p for p in prompts if p.split == name]
    raise KeyError(name)


NAMED_SETS = ("train", "heldout", "all")


def scene_for(spec: PromptSpec, rng: random.Random, allow_heldout: bool = False) -> Scene:
    """A random scene that matches `spec`; unstated colours and backgrounds are drawn at random.

    With allow_heldout=False, unstated attributes never form a held-out pair, so training
    scenes never show a held-out combination even in pixels the caption does not mention.
    """

    def allowed(color: str | None, background: str | None) -> bool:
        return allow_heldout or spec.heldout or not PromptSpec(spec.count, spec.shape, color, background).heldout

    backgrounds = [spec.background] if spec.background else [b for b in BACKGROUNDS if allowed(None, b)]
    background = rng.choice(backgrounds)
    colors = [spec.color] if spec.color else [c for c in COLORS if allowed(c, background)]
    kinds = [(spec.shape, rng.choice(colors)) for _ in range(spec.count)]
    return Scene(background, place_objects(kinds, rng))
