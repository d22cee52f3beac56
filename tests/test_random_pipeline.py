"""The SD v1.5-size speed benchmark needs no download: SD v1.5's own component configs, shipped in
align/configs/sd15/architecture/, build its architecture with random weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from align.random_pipeline import build_components

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_configs_build_stable_diffusion_v1_5_to_the_parameter():
    """The published parameter counts of runwayml/stable-diffusion-v1-5's UNet, VAE and CLIP ViT-L/14
    text encoder; built on the meta device, so nothing is allocated."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet, vae, text_encoder, scheduler = build_components()
    counts = [sum(p.numel() for p in model.parameters()) for model in (unet, vae, text_encoder)]
    assert counts == [859_520_964, 83_653_863, 123_060_480]
    image_side = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    assert (image_side, scheduler.config.num_train_timesteps) == (512, 1000)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark runs for real")
def test_the_benchmark_says_in_one_sentence_that_it_needs_a_gpu():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sd15_speed.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().count("\n") == 0 and "No GPU here" in result.stdout and "nothing was measured" in result.stdout
