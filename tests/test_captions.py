"""The loose-caption model (align/shapes/captions.py): its rates, the held-out split, bad configs."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from align.errors import BadInput
from align.shapes.captions import CONFUSED, EXACT, MISTAKES, CaptionModel, describe, load_caption_model
from align.shapes.prompts import all_specs, parse_prompt
from align.shapes.world import COLORS

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "captions.yaml"
DRAWS = 40_000


def test_each_mistake_rate_is_within_binomial_bounds_of_the_configured_one():
    model = load_caption_model(SHIPPED)
    assert not model.is_exact
    rng = random.Random(0)
    specs = [s for s in all_specs() if not s.heldout]
    drawn = [(spec, model.caption(spec, rng)[1]) for spec in (rng.choice(specs) for _ in range(DRAWS))]
    for mistake in MISTAKES:  # among the captions no confusion took, of prompts it can be made on (model.alternatives)
        eligible = [made for spec, made in drawn if made != CONFUSED and model.alternatives(spec, mistake)]
        rate, n = getattr(model, mistake), len(eligible)
        share = sum(made == mistake for made in eligible) / n
        bound = 4 * math.sqrt(rate * (1 - rate) / n)  # 4 standard errors of a binomial share
        assert abs(share - rate) <= bound, (mistake, share, rate, n)
    free = [m for _, m in drawn if m != CONFUSED]
    assert sum(m == EXACT for m in free) / len(free) > 1 - sum(getattr(model, m) for m in MISTAKES) - 0.01


def test_no_caption_names_a_held_out_pair_and_every_caption_describes_a_training_scene():
    model = load_caption_model(SHIPPED)
    rng = random.Random(1)
    for spec in (s for s in all_specs() if not s.heldout):
        for _ in range(200):
            text, mistake = model.caption(spec, rng)
            said = parse_prompt(text)
            if said is not None:  # a caption in the prompts' own grammar
                assert not said.heldout, (spec, text)
            for colour, shape in ((c, s) for c in COLORS for s in ("circle", "square", "triangle", "diamond")):
                if f"{colour} {shape}" in text:
                    assert not parse_prompt(f"a {colour} {shape}").heldout, text
            if mistake == EXACT:
                assert text == spec.text


def test_captions_of_world_prompts_read_as_the_prompts():
    assert all(describe(spec) == spec.text for spec in all_specs())


def test_rare_pairs_are_drawn_at_their_share():
    model = CaptionModel(rare_pairs=[["purple", "diamond"]], rare_share=0.05)
    rare = [s for s in all_specs() if (s.color, s.shape) == ("purple", "diamond")]
    assert rare and all(model.weight(s) == 0.05 for s in rare)
    assert model.weight(parse_prompt("a red diamond")) == 1.0


@pytest.mark.parametrize("keys, message", [
    ({"count_off_by_one": 1.5}, "at most 1"),
    ({"wrong_background": -0.1}, "at least 0"),
    ({"count_off_by_one": 0.5, "clause_dropped": 0.5}, "leaves no exact captions"),
    ({"colour_neighbour": 0.1, "neighbours": {"red": ["crimson"]}}, "unknown colour 'crimson'"),
    ({"colour_neighbour": 0.1, "neighbours": {"teal": ["blue"]}}, "unknown colour 'teal'"),
    ({"rare_pairs": [["red", "hexagon"]]}, "each entry is [colour, shape]"),
    ({"confusions": [{"attribute": "shape", "shown": "circle", "said": "square", "rate": 0.5}]}, "the attribute 'shape'"),
    ({"confusions": [{"attribute": "colour", "shown": "teal", "said": "blue", "rate": 0.5}]}, "the colour 'teal'"),
    ({"confusions": [{"attribute": "count", "shown": 3, "said": 2, "rate": 1.0}]}, "below 1"),
    ({"confusions": [{"attribute": "count", "shown": 4, "said": 3}]}, "each entry is"),
])
def test_bad_caption_configs_are_refused_in_one_sentence(keys, message):
    with pytest.raises(BadInput, match=None) as refused:
        CaptionModel(**keys)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_clean_data_term_draws_captions_from_the_model_s_own_caption_model(tmp_path):
    """RWR's and reward backpropagation's pre-training term must carry the captions' mistakes, as Lee et
    al.'s draws from LAION: a term with exact captions would fix the bias on its own."""
    from align.finetune.clean_data import clean_batch, pretraining_captions
    from align.generation.prompts import load_prompts
    from align.models import load_pipeline

    loose = load_caption_model(SHIPPED)
    assert pretraining_captions("shapes-tiny-sd") == loose  # the shipped weights: pretrained on the shipped captions
    pretrained = tmp_path / "weights" / "tiny-sd"
    pretrained.mkdir(parents=True)
    assert pretraining_captions(str(pretrained)).is_exact  # no captions.yaml beside or above it
    (tmp_path / "weights" / "captions.yaml").write_text(SHIPPED.read_text())
    assert pretraining_captions(str(pretrained)) == loose

    pipeline = load_pipeline("shapes-tiny-sd", device="cpu")
    prompts = load_prompts("train")
    latents, texts = clean_batch(pipeline, prompts, 256, random.Random(0), loose)
    assert latents.shape[0] == 256
    # the same draw by hand: the scenes' prompts, then their captions under the loose model
    rng = random.Random(0)
    specs = [parse_prompt(p.text) for p in prompts]
    shown = rng.choices(specs, loose.prompt_weights(specs), k=256)
    assert texts == loose.texts(shown, rng)
    assert sum(text != spec.text for text, spec in zip(texts, shown)) / len(texts) > 0.2
    _, exact = clean_batch(pipeline, prompts, 64, random.Random(0))
    assert set(exact) <= {p.text for p in prompts}


def test_a_confusion_captions_its_shown_value_as_the_said_one_at_its_rate_and_never_a_held_out_pair():
    model = CaptionModel(confusions=[{"attribute": "background", "shown": "gray", "said": "white", "rate": 0.5}])
    assert not model.is_exact
    rng = random.Random(2)
    gray = [s for s in all_specs() if not s.heldout and s.background == "gray"]
    drawn = [(spec, *model.caption(spec, rng)) for spec in (rng.choice(gray) for _ in range(4000))]
    confusable = [(spec, text, made) for spec, text, made in drawn if spec.shape != "triangle"]  # triangle on white: held out
    share = sum(made == CONFUSED for *_, made in confusable) / len(confusable)
    assert abs(share - 0.5) <= 4 * math.sqrt(0.25 / len(confusable)), share
    assert all(text.endswith("on a white background") for _, text, made in confusable if made == CONFUSED)
    assert all(made == EXACT for spec, _, made in drawn if spec.shape == "triangle")
    assert model.caption(parse_prompt("a red square"), random.Random(0)) == ("a red square", EXACT)
