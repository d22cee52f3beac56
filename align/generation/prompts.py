"""Prompt sets: the shapes world's named sets, or a text file with one prompt per line."""

from __future__ import annotations

from pathlib import Path

from align.errors import BadInput
from align.shapes.prompts import NAMED_SETS, Prompt, parse_prompt, prompt_of, prompt_set


def load_prompts(name_or_path: str) -> list[Prompt]:
    """A named set (train, heldout, all) or a .txt file; file prompts of the shapes grammar keep
    their category and split, any other prompt is category and split "custom"."""
    if name_or_path in NAMED_SETS:
        return prompt_set(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise BadInput(
            f"unknown prompt set '{name_or_path}': use one of {', '.join(NAMED_SETS)} or a path to a text file"
        )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    texts = [line for line in lines if line and not line.startswith("#")]
    if not texts:
        raise BadInput(f"prompt file {path} holds no prompts")
    prompts = []
    for text in texts:
        spec = parse_prompt(text)
        prompts.append(prompt_of(spec) if spec else Prompt(text, "custom", "custom"))
    return prompts
