"""Scenes of 1-3 coloured shapes on a coloured background, and their 64x64 renders.

The vocabulary (shapes, object colours, background colours, counts) is the whole world:
prompts, the oracle and the pretraining data are all built from it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64

SHAPES = ("circle", "square", "triangle", "diamond")

# Object colours are far apart in RGB so that soft generated edges still name one colour.
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (140, 50, 190),
    "orange": (245, 140, 20),
}

# No background colour equals an object colour.
BACKGROUNDS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}

COUNTS = {1: "one", 2: "two", 3: "three"}

# Object sizes (bounding-box side in pixels) shrink as scenes get crowded.
SIZE_RANGE = {1: (16, 24), 2: (14, 20), 3: (12, 16)}
# Minimum free pixels between two objects' boxes: more than one latent pixel of the 4x
# autoencoder, so that drawn objects stay apart instead of merging into one blob.
GAP = 5


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    x: int  # left of the bounding box
    y: int  # top of the bounding box
    size: int


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[SceneObject, ...]


def place_objects(kinds: list[tuple[str, str]], rng: random.Random) -> tuple[SceneObject, ...]:
    """Put (shape, colour) objects in a row: n objects fill n equal columns, one each, at a random
    height and a small random shift within the column that keeps them GAP apart. A count is then a
    layout the tiny UNet can learn (with free placement it drew four objects for "three")."""
    low, high = SIZE_RANGE[len(kinds)]
    column = IMAGE_SIZE / len(kinds)
    placed = []
    for index, (shape, color) in enumerate(kinds):
        size = rng.randint(low, high)
        slack = max(0, int((column - size - GAP) / 2))
        # the slack leaves GAP / 2 to a column's edges, so the row also stays off the image's edges
        x = round(column * (index + 0.5) - size / 2) + rng.randint(-slack, slack)
        y = rng.randint(1, IMAGE_SIZE - size - 1)
        placed.append(SceneObject(shape, color, x, y, size))
    return tuple(placed)


def render(scene: Scene) -> Image.Image:
    """Hard-edged render: every pixel is the background colour or one object's colour."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        fill = COLORS[obj.color]
        x0, y0, x1, y1 = obj.x, obj.y, obj.x + obj.size - 1, obj.y + obj.size - 1
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif obj.shape == "triangle":  # apex up
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
        elif obj.shape == "diamond":
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
        else:
            raise ValueError(f"unknown shape {obj.shape!r}")
    return image


def to_array(image: Image.Image) -> np.ndarray:
    """An image as a float32 HxWx3 array in 0..255."""
    return np.asarray(image.convert("RGB"), dtype=np.float32)
