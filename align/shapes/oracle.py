"""The oracle: parses a shapes-world image and judges whether it matches a prompt.

It is the objective stand-in for human raters. Rules, in order:

1. Background. Every pixel is given the nearest colour of the joint palette (background and
   object colours, RGB distance). The most frequent one must be a background colour covering
   at least 35% of the image; otherwise the image is unparseable. The background's reference
   colour is the median of the pixels given that name.
2. Objects. Pixels farther than 60 (RGB distance) from the background reference are
   foreground. Its 8-connected components with fewer than 20 pixels are stray pixels and
   ignored; every other component, holes filled, is one object.
3. Colour of an object: the median colour of its interior (one pixel eroded off, so soft
   edges don't count), named by the nearest object colour; farther than 90 from all of them
   means no colour.
4. Shape of an object, from its bounding box: width/height outside 0.6..1.67 is no shape.
   Fill ratio (pixels / box area) >= 0.86 is a square, >= 0.66 a circle, >= 0.33 a triangle
   or diamond: a triangle (apex up) is at least 1.6 times wider in its bottom third than in
   its top third, a diamond is within 1/1.6..1.6; anything else is no shape.
5. Parseable: a background, 1 to 8 objects, each with a colour and a shape.
6. Judgement per attribute the prompt states: count (number of objects equals the number
   asked), shape (every object has the shape asked), color (every object has the colour
   asked), background. Colour and background are None when the prompt does not state them.
   Aligned: parseable and every stated attribute holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from align.shapes.prompts import PromptSpec, parse_prompt
from align.shapes.world import BACKGROUNDS, COLORS, IMAGE_SIZE, to_array

BACKGROUND_MIN_SHARE = 0.35
FOREGROUND_DISTANCE = 60.0
STRAY_PIXELS = 20
COLOR_TOLERANCE = 90.0
MAX_OBJECTS = 8

# Measures of clean renders (fill x FILL_WEIGHT, log bottom/top, log middle/bottom width).
FILL_WEIGHT = 3.0
SHAPE_TOLERANCE = 0.8
_SHAPE_NAMES = ["circle", "square", "triangle", "diamond"]
_SHAPE_PROTOTYPES = np.array(
    [
        [0.785 * FILL_WEIGHT, 0.0, np.log(1.55)],
        [1.0 * FILL_WEIGHT, 0.0, 0.0],
        [0.52 * FILL_WEIGHT, np.log(4.8), np.log(0.58)],
        [0.5 * FILL_WEIGHT, 0.0, np.log(3.0)],
    ]
)

_PALETTE_NAMES = list(BACKGROUNDS) + list(COLORS)
_PALETTE = np.array(list(BACKGROUNDS.values()) + list(COLORS.values()), dtype=np.float32)
_OBJECT_NAMES = list(COLORS)
_OBJECT_PALETTE = np.array(list(COLORS.values()), dtype=np.float32)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass
class ParsedObject:
    shape: str | None
    color: str | None
    area: int
    box: tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


@dataclass
class Parse:
    background: str | None
    objects: list[ParsedObject] = field(default_factory=list)

    @property
    def parseable(self) -> bool:
        return (
            self.background is not None
            and 1 <= len(self.objects) <= MAX_OBJECTS
            and all(o.shape and o.color for o in self.objects)
        )


@dataclass
class Judgement:
    aligned: bool
    attributes: dict[str, bool | None]  # count, shape, color, background
    parse: Parse

    @property
    def parseable(self) -> bool:
        return self.parse.parseable


def parse_image(image: Image.Image) -> Parse:
    """Read background and objects (colour, shape) off an image, following the module's rules."""
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    pixels = to_array(image)
    distances = np.linalg.norm(pixels[:, :, None, :] - _PALETTE[None, None], axis=-1)
    nearest = distances.argmin(axis=-1)
    counts = np.bincount(nearest.ravel(), minlength=len(_PALETTE))
    top = int(counts.argmax())
    if _PALETTE_NAMES[top] not in BACKGROUNDS or counts[top] < BACKGROUND_MIN_SHARE * nearest.size:
        return Parse(background=None)
    reference = np.median(pixels[nearest == top], axis=0)
    foreground = np.linalg.norm(pixels - reference, axis=-1) > FOREGROUND_DISTANCE
    labels, n = ndimage.label(foreground, structure=_EIGHT_CONNECTED)
    objects = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels == index
        if component.sum() < STRAY_PIXELS:
            continue
        color, rgb = _color(pixels, component)
        coverage = _coverage(pixels, component, reference, rgb)
        rows, cols = np.nonzero(coverage >= 0.5)
        if rows.size == 0:
            continue
        top_, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        fill = coverage.sum() / ((bottom - top_) * (right - left))
        shape = _shape(coverage[top_:bottom, left:right], fill)
        objects.append(ParsedObject(shape, color, int(rows.size), (top_, left, bottom, right)))
    return Parse(_PALETTE_NAMES[top], objects)


def _color(pixels: np.ndarray, component: np.ndarray) -> tuple[str | None, np.ndarray]:
    """Name and median colour of a component's interior (soft edges left out)."""
    interior = ndimage.binary_erosion(component)
    region = interior if interior.sum() >= 5 else component
    median = np.median(pixels[region], axis=0)
    distances = np.linalg.norm(_OBJECT_PALETTE - median, axis=-1)
    best = int(distances.argmin())
    return (_OBJECT_NAMES[best] if distances[best] <= COLOR_TOLERANCE else None), median


def _coverage(pixels: np.ndarray, component: np.ndarray, background: np.ndarray, color: np.ndarray) -> np.ndarray:
    """How much of each pixel near the component is object rather than background.

    Blur moves mass across an edge but keeps its total, and noise averages out (hence no
    clipping), so the summed coverage stays close to the hard-edged render's area.
    """
    near = ndimage.binary_dilation(component, iterations=2)
    direction = color - background
    alpha = ((pixels - background) @ direction) / max(float(direction @ direction), 1e-6)
    return np.where(near, alpha, 0.0)


def _shape(box_coverage: np.ndarray, fill: float) -> str | None:
    """The shape whose clean-render measures are nearest; None if none is near enough."""
    height, width = box_coverage.shape
    if not 0.6 <= width / height <= 1 / 0.6:
        return None
    measures = np.array([fill * FILL_WEIGHT, *_profile(box_coverage)])
    distances = np.linalg.norm(_SHAPE_PROTOTYPES - measures, axis=-1)
    best = int(distances.argmin())
    return _SHAPE_NAMES[best] if distances[best] <= SHAPE_TOLERANCE else None


def _profile(box_coverage: np.ndarray) -> tuple[float, float]:
    """log(bottom/top width) and log(middle/bottom width), widths averaged over thirds."""
    widths = np.maximum(box_coverage.sum(axis=1), 1e-3)
    third = max(1, len(widths) // 3)
    top, bottom = widths[:third].mean(), widths[-third:].mean()
    middle = widths[len(widths) // 2 - 1 : len(widths) // 2 + 1].mean()
    return float(np.log(bottom / top)), float(np.log(middle / bottom))


def judge(image: Image.Image, prompt: str | PromptSpec) -> Judgement:
    """Does `image` match `prompt`? Per attribute and overall, by the module's rules."""
    spec = prompt if isinstance(prompt, PromptSpec) else parse_prompt(prompt)
    if spec is None:
        raise ValueError(f"{prompt!r} is not a shapes-world prompt")
    parse = parse_image(image)
    objects = parse.objects
    attributes = {
        "count": len(objects) == spec.count,
        "shape": bool(objects) and all(o.shape == spec.shape for o in objects),
        "color": (bool(objects) and all(o.color == spec.color for o in objects)) if spec.color else None,
        "background": (parse.background == spec.background) if spec.background else None,
    }
    aligned = parse.parseable and all(v for v in attributes.values() if v is not None)
    return Judgement(aligned, attributes, parse)
