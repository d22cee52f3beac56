"""Swapping the shapes configs for another model changes configuration only: a tiny random-initialised
pipeline at 32 px (not the shipped 64 px one) with free-text prompts (no shapes oracle) goes through
generate, evaluate, rating, export, train-reward, RWR from labels, DDPO and reward backpropagation,
with the shapes configs plus overrides of the model, the prompts, and the switches that only the
shapes world can serve (its oracle, its clean renders, its prompt perturbations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from align.cli import default_config, main

PROMPTS = "a watercolor fox in the snow\na red vintage car\nan astronaut riding a horse\na bowl of ramen\n"
# What a world without the shapes oracle turns off; everything else is the shapes configs as shipped.
NO_SHAPES_WORLD = {
    "evaluate": ["oracle=false"],
    "train-reward": ["world=none", "train.aux_weight=0", "train.compare_without_aux=false"],
    "finetune": ["eval.oracle=false", "eval.fidelity=false"],
    "rwr": ["rwr.pretrain_beta=0"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    from align.models import resolve

    root = tmp_path_factory.mktemp("swap")
    shipped = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None, requires_safety_checker=False)
    torch.manual_seed(0)
    StableDiffusionPipeline(
        vae=AutoencoderKL.from_config({**shipped.vae.config, "sample_size": 32}),
        unet=UNet2DConditionModel.from_config({**shipped.unet.config, "sample_size": 8}),  # 32 px: the VAE scales by 4
        text_encoder=shipped.text_encoder, tokenizer=shipped.tokenizer, scheduler=shipped.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(root / "tiny-32")
    (root / "prompts.txt").write_text(PROMPTS)
    return root


def rate_by_warmth(run) -> None:
    """A rater with a rule the reward can learn: thumbs up for the warmer half of the images."""
    from labeling_app.store import open_run_store

    with open_run_store(run) as store:
        warmth = {}
        for sample_id in store.sample_ids():
            pixels = np.asarray(Image.open(run / store.sample(sample_id).image_path), dtype=float)
            warmth[sample_id] = pixels[..., 0].mean() - pixels[..., 2].mean()
        median = float(np.median(list(warmth.values())))
        for sample_id, value in warmth.items():
            store.next_sample("ann")
            store.rate("ann", sample_id, int(value > median))


def test_the_whole_loop_runs_on_another_model_with_free_text_prompts(world):
    model, prompts = world / "tiny-32", world / "prompts.txt"
    swap = [f"model={model}", f"prompts={prompts}"]
    run = world / "images"
    assert main(["generate", "--out", str(run), *swap, "images_per_prompt=6", "sampling.steps=3"]) == 0
    samples = pd.read_parquet(run / "samples.parquet")
    assert Image.open(run / samples["image_path"][0]).size == (32, 32) and set(samples["category"]) == {"custom"}
    assert main(["evaluate", "--run", str(run), *NO_SHAPES_WORLD["evaluate"]]) == 0
    rate_by_warmth(run)
    labels = world / "labels.parquet"
    assert main(["export", str(run), "--out", str(labels)]) == 0
    reward = world / "reward"
    assert main(["train-reward", "--labels", str(labels), "--out", str(reward), *NO_SHAPES_WORLD["train-reward"],
                 "train.max_epochs=20"]) == 0

    small = [*swap, "epochs=2", "sampling.steps=3", "sampling.batch_size=2", "sampling.batches_per_epoch=2",
             "train.batch_size=2", f"eval.prompts={prompts}", f"eval.seen_prompts={prompts}", "eval.seen_prompt_count=4",
             "eval.steps=3", *NO_SHAPES_WORLD["finetune"]]
    learned = ["reward.kind=learned", f"reward.path={reward}"]
    for method, extra in (("rwr", ["rwr.source=labels", f"rwr.labels={labels}", *NO_SHAPES_WORLD["rwr"]]),
                          ("ddpo", learned), ("reward_backprop", [*learned, "backprop.max_steps=3"])):
        out = world / method
        assert main(["finetune", "--config", default_config(f"shapes/{method}.yaml"), "--out", str(out), *small, *extra]) == 0
        assert (out / "final" / "pytorch_lora_weights.safetensors").is_file(), method
    rwr_data = torch.load(world / "rwr" / "rwr_dataset.pt")
    assert len(rwr_data["prompts"]) == 24 and rwr_data["latents"].shape[-1] == 8  # every free-text rating, at 32 px
    tuned = world / "tuned"
    assert main(["generate", "--out", str(tuned), *swap, "sampling.steps=3", f"lora={world / 'ddpo' / 'final'}"]) == 0


def test_the_shapes_only_pretraining_term_is_refused_for_free_text_prompts(world, capsys, tmp_path):
    args = [f"model={world / 'tiny-32'}", f"prompts={world / 'prompts.txt'}", "rwr.source=labels", "rwr.labels=unused.parquet"]
    assert main(["finetune", "--config", default_config("shapes/rwr.yaml"), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert "no prompt of" in err and "rwr.pretrain_beta=0" in err
    assert not (tmp_path / "o").exists()
