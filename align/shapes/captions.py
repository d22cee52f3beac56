"""Loose, web-like captions for pretraining: a training scene's caption does not always say what it shows.

Real text-to-image models learn from web captions that miscount, misname colours and leave clauses
out, and most of their prompt-following failures come from there (Betker et al. 2023, DALL-E 3;
Esser et al. 2024, SD3). The caption model gives the shapes world that property. Each training
scene is drawn for a prompt of the world, as before; its caption is that prompt, or, at the
configured rates, one of these mistakes (at most one per caption, so 1 - the sum of the rates of
captions are exact):

  count_off_by_one   the count named one off (two circles captioned "three circles");
  colour_neighbour   the object colour named as a neighbour (orange for red, purple for blue);
  wrong_background   another background named;
  clause_dropped     the colour or the background clause left out.

Those mistakes are rare and spread over several wrong words, and a model pretrained to its
plateau averages them out (docs/research/world-plateau.md: background alignment 93% at 10% wrong
backgrounds). `confusions` are systematic instead, the way web captions err: scenes showing one
value of an attribute are captioned with one other value at their own rate, e.g.
`{attribute: background, shown: gray, said: white, rate: 0.5}`, so that the captions of the said
value carry the shown one often enough to stay in a converged model. A scene is confused, or
else it draws the mistakes above.

A mistake is made only in ways that name no held-out pair; one that cannot be (a colour mistake
on a prompt naming no colour) leaves the caption exact. Separately, the prompts naming one of `rare_pairs`
(a colour with a shape) are drawn `rare_share` times as often as the others: combinations the web
shows rarely. The prompts, the held-out split and the oracle do not change: the oracle judges a
prompt's literal meaning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from align.config import Checked, load_config
from align.errors import BadInput
from align.shapes.prompts import PromptSpec
from align.shapes.world import BACKGROUNDS, COLORS, COUNTS, SHAPES

MISTAKES = ("count_off_by_one", "colour_neighbour", "wrong_background", "clause_dropped")
EXACT, CONFUSED = "exact", "confusion"
CONFUSABLE = {"count": COUNTS, "colour": COLORS, "background": BACKGROUNDS}  # attribute -> its values
CONFUSED_FIELD = {"count": "count", "colour": "color", "background": "background"}  # a confusion's attribute -> PromptSpec's


@dataclass(frozen=True)
class CaptionModel(Checked):
    count_off_by_one: float = field(default=0.0, metadata={"min": 0, "max": 1})
    colour_neighbour: float = field(default=0.0, metadata={"min": 0, "max": 1})
    wrong_background: float = field(default=0.0, metadata={"min": 0, "max": 1})
    clause_dropped: float = field(default=0.0, metadata={"min": 0, "max": 1})
    neighbours: dict = field(default_factory=dict)  # colour -> the colours it is mistaken for
    rare_pairs: list[list[str]] = field(default_factory=list)  # [colour, shape] pairs drawn rarely
    rare_share: float = field(default=1.0, metadata={"min": 0, "max": 1})
    # systematic mistakes: [{attribute: count | colour | background, shown: V, said: W, rate: R}]
    confusions: list[dict] = field(default_factory=list)

    def check(self) -> None:
        for confusion in self.confusions:
            _check_confusion(confusion)
        total = sum(getattr(self, name) for name in MISTAKES)
        if total >= 1:
            raise BadInput(f"the caption mistake rates sum to {total:g}, which leaves no exact captions; keep their sum below 1")
        for colour, mistaken_for in self.neighbours.items():
            if not isinstance(mistaken_for, list) or not mistaken_for:
                raise BadInput(f"neighbours.{colour} must be a list of colours, got {mistaken_for!r}")
            unknown = [c for c in [colour, *mistaken_for] if c not in COLORS]
            if unknown:
                raise BadInput(f"neighbours names the unknown colour {unknown[0]!r}; the colours are {', '.join(COLORS)}")
        if self.colour_neighbour and not self.neighbours:
            raise BadInput("colour_neighbour is above 0 but neighbours names no colour to mistake")
        for pair in self.rare_pairs:
            if len(pair) != 2 or pair[0] not in COLORS or pair[1] not in SHAPES:
                raise BadInput(f"rare_pairs holds {pair!r}; each entry is [colour, shape] of the world")

    @property
    def is_exact(self) -> bool:
        return not any(getattr(self, name) for name in MISTAKES) and not self.confusions

    def weight(self, spec: PromptSpec) -> float:
        """How often, relative to the others, a scene is drawn for this prompt."""
        return self.rare_share if [spec.color, spec.shape] in self.rare_pairs else 1.0

    def prompt_weights(self, specs: list[PromptSpec]) -> list[float] | None:
        """Each prompt's draw weight, or None when every prompt is drawn alike (no rare pairs)."""
        return [self.weight(spec) for spec in specs] if self.rare_pairs else None

    def texts(self, chosen: list[PromptSpec], rng: random.Random) -> list[str]:
        """The captions of scenes drawn for `chosen`: under exact captions the prompts' own text, drawing
        nothing from `rng` (so the exact recipe draws as it always did)."""
        if self.is_exact:
            return [spec.text for spec in chosen]
        return [self.caption(spec, rng)[0] for spec in chosen]

    def caption(self, spec: PromptSpec, rng: random.Random) -> tuple[str, str]:
        """A scene of `spec`'s caption, and which mistake it holds (EXACT for none)."""
        for confusion in self.confusions:
            said = _confused(spec, confusion)
            if said is not None and not said.heldout and rng.random() < confusion["rate"]:
                return describe(said), CONFUSED
        draw, mistake = rng.random(), EXACT
        for name in MISTAKES:
            rate = getattr(self, name)
            if draw < rate:
                mistake = name
                break
            draw -= rate
        options = self.alternatives(spec, mistake) if mistake != EXACT else []
        if not options:
            return spec.text, EXACT
        return describe(rng.choice(options)), mistake

    def alternatives(self, spec: PromptSpec, mistake: str) -> list[PromptSpec]:
        """What a caption with this mistake may say instead of `spec`: never a held-out pair; empty when
        the mistake does not apply to the prompt."""
        return [said for said in _mistaken(spec, mistake, self.neighbours) if not said.heldout]


def _check_confusion(confusion) -> None:
    if not isinstance(confusion, dict) or set(confusion) != {"attribute", "shown", "said", "rate"}:
        raise BadInput(f"confusions holds {confusion!r}; each entry is {{attribute, shown, said, rate}}")
    values = CONFUSABLE.get(confusion["attribute"])
    if values is None:
        raise BadInput(f"confusions names the attribute {confusion['attribute']!r}; it is one of {', '.join(CONFUSABLE)}")
    for key in ("shown", "said"):
        if confusion[key] not in values:
            raise BadInput(f"confusions names the {confusion['attribute']} {confusion[key]!r}, which the world does not have")
    rate = confusion["rate"]
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise BadInput(f"a confusion's rate must be at least 0 and below 1 (else no scene of it is captioned right), got {rate!r}")


def _confused(spec: PromptSpec, confusion: dict) -> PromptSpec | None:
    """What the confusion makes a caption of `spec` say, or None when the prompt does not show its value."""
    field_name = CONFUSED_FIELD[confusion["attribute"]]
    if getattr(spec, field_name) != confusion["shown"] or (field_name == "count" and not _count_is_said(spec)):
        return None
    return replace(spec, **{field_name: confusion["said"]})


def _count_is_said(spec: PromptSpec) -> bool:
    """Whether the prompt names its count as a word of its own: in "a red square" and "a square on a white
    background" the count is part of the grammar, so a count mistake cannot be made there."""
    return (spec.color is None) == (spec.background is None)


def _mistaken(spec: PromptSpec, mistake: str, neighbours: dict) -> list[PromptSpec]:
    if mistake == "count_off_by_one":
        if not _count_is_said(spec):
            return []
        return [PromptSpec(n, spec.shape, spec.color, spec.background) for n in (spec.count - 1, spec.count + 1) if n in COUNTS]
    if mistake == "colour_neighbour":
        return [PromptSpec(spec.count, spec.shape, c, spec.background) for c in neighbours.get(spec.color, [])]
    if mistake == "wrong_background":
        if spec.background is None:
            return []
        return [PromptSpec(spec.count, spec.shape, spec.color, b) for b in BACKGROUNDS if b != spec.background]
    said = []
    if spec.color is not None:
        said.append(PromptSpec(spec.count, spec.shape, None, spec.background))
    if spec.background is not None:
        said.append(PromptSpec(spec.count, spec.shape, spec.color, None))
    return said


def describe(spec: PromptSpec) -> str:
    """A caption of any count, shape and optional colour and background; a prompt of the world reads as its text."""
    noun = spec.shape if spec.count == 1 else spec.shape + "s"
    one_named = spec.count == 1 and (spec.color is None) != (spec.background is None)
    words = ["a" if one_named else COUNTS[spec.count], *([spec.color] if spec.color else []), noun]
    if spec.background:
        words += ["on", "a", spec.background, "background"]
    return " ".join(words)


def load_caption_model(path: str | Path | None) -> CaptionModel:
    """The caption model of a YAML file; None is exact captions (no mistakes, no rare pairs)."""
    return CaptionModel() if path is None else load_config(CaptionModel, path)
