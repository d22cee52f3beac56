"""Prompt perturbations for the reward model's auxiliary task (Lee et al. 2023).

A perturbation changes one attribute the prompt states (count, colour or background) to
another value of the world, so the result is a prompt the image does not match.
"""

from __future__ import annotations

from dataclasses import replace

from align.shapes.prompts import parse_prompt
from align.shapes.world import BACKGROUNDS, COLORS, COUNTS


def perturbations(prompt: str) -> list[str]:
    """Every one-attribute change of a shapes prompt; [] for text outside the world."""
    spec = parse_prompt(prompt)
    if spec is None:
        return []
    changed = []
    if spec.category in ("count", "combination"):
        changed += [replace(spec, count=n) for n in COUNTS if n != spec.count]
    if spec.color:
        changed += [replace(spec, color=c) for c in COLORS if c != spec.color]
    if spec.background:
        changed += [replace(spec, background=b) for b in BACKGROUNDS if b != spec.background]
    return [s.text for s in changed]
