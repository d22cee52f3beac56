"""Where a pretraining step's time goes: rendering, VAE encoding, the model's own pass, EMA.

    python experiments/pretrain_step_profile.py [--steps 30]
    python experiments/pretrain_step_profile.py --variants [--steps 20]   # the UNet's pass in other float paths

Hypothesis (the world issue, item 2): rendering the scenes and encoding them with the VAE at
every step cost more than the UNet's forward and backward pass, so that a cached latent dataset
would buy many more UNet steps in the same time. Refuted if the UNet's pass holds most of a step.
The same for the tiny CLIP's stage (rendering against its forward and backward pass).

Each part is timed alone, in the order a step runs it, with the shipped VAE and text encoder, a
fresh UNet and CLIP of the shipped architectures, at the recipe's batch sizes, after 3 warm-up
steps; medians over `--steps` steps.

With `--variants`, the second question: would another float path make the UNet's pass cheaper?
Four copies of one fresh UNet take their steps in turn, on the same latents: fp32 (the recipe),
bf16 autocast, channels_last memory and `torch.compile` (its compilation not timed). Any of them
changes the weights a run writes, so a faster one means pretraining and gating again.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import open_clip
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from diffusers.training_utils import EMAModel

from align.models import resolve
from align.shapes.pretrain import (
    CLIP_BATCH,
    THREADS,
    UNET_BATCH,
    bf16_autocast,
    render_batch,
    training_specs,
)
from align.shapes.tiny_models import TINY_CLIP_CONFIG, tiny_unet, training_scheduler

WARM_UP = 3


def timed(parts: dict[str, list[float]], name: str, work):
    began = time.perf_counter()
    result = work()
    parts.setdefault(name, []).append(time.perf_counter() - began)
    return result


def measured(steps: int, one_step) -> dict[str, list[float]]:
    """Each part's times over `steps` calls of `one_step(parts)`, after WARM_UP calls not kept."""
    parts: dict[str, list[float]] = {}
    for step in range(WARM_UP + steps):
        if step == WARM_UP:
            parts.clear()
        one_step(parts)
    return parts


def unet_step_parts(steps: int) -> dict[str, list[float]]:
    pipeline = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"))
    vae, text_encoder, tokenizer = pipeline.vae.float(), pipeline.text_encoder, pipeline.tokenizer
    specs, rng, generator = training_specs(), random.Random(0), torch.Generator().manual_seed(0)
    with torch.no_grad():
        ids = tokenizer([s.text for s in specs], padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt")
        embeddings = text_encoder(ids.input_ids).last_hidden_state
    unet = tiny_unet(text_encoder.config.hidden_size)
    ema = EMAModel(unet.parameters(), decay=0.999)
    noise_scheduler = training_scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)

    def one_step(parts: dict[str, list[float]]) -> None:
        images, chosen = timed(parts, "render 32 scenes", lambda: render_batch(specs, rng, UNET_BATCH))
        with torch.no_grad(), bf16_autocast():
            posterior = timed(parts, "VAE encode", lambda: vae.encode(images).latent_dist)
        latents = posterior.sample(generator).float() * vae.config.scaling_factor
        rows = torch.tensor([specs.index(spec) for spec in chosen])

        def unet_pass():
            noise = torch.randn(latents.shape, generator=generator)
            t = torch.randint(0, 1000, (len(rows),), generator=generator)
            prediction = unet(noise_scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=embeddings[rows]).sample
            loss = F.mse_loss(prediction, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        timed(parts, "UNet forward, backward, step", unet_pass)
        timed(parts, "EMA", lambda: ema.step(unet.parameters()))

    return measured(steps, one_step)


def unet_pass_variants(steps: int) -> dict[str, list[float]]:
    """Seconds of one UNet forward, backward and optimizer step, per float path, taken in turn."""
    torch.manual_seed(0)
    fresh = tiny_unet(TINY_CLIP_CONFIG["text_cfg"]["width"])
    noise_scheduler = training_scheduler()
    latents = torch.randn(UNET_BATCH, 4, 16, 16)
    embeddings = torch.randn(UNET_BATCH, 77, fresh.config.cross_attention_dim)
    variants = {}
    for name in ("fp32", "bf16 autocast", "channels_last", "torch.compile"):
        unet = copy.deepcopy(fresh)
        if name == "channels_last":
            unet = unet.to(memory_format=torch.channels_last)
        model = torch.compile(unet) if name == "torch.compile" else unet
        variants[name] = (model, torch.optim.AdamW(unet.parameters(), lr=1e-4))

    def one_pass(name: str) -> None:
        model, optimizer = variants[name]
        noise = torch.randn(latents.shape)
        t = torch.randint(0, 1000, (UNET_BATCH,))
        noisy = noise_scheduler.add_noise(latents, noise, t)
        if name == "channels_last":
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16 autocast"):
            prediction = model(noisy, t, encoder_hidden_states=embeddings).sample
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def one_step(parts: dict[str, list[float]]) -> None:
        for name in variants:
            timed(parts, name, lambda: one_pass(name))

    return measured(steps, one_step)


def clip_step_parts(steps: int) -> dict[str, list[float]]:
    specs, rng = training_specs(), random.Random(0)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    tokens = dict(zip([s.text for s in specs], tokenizer([s.text for s in specs])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def one_step(parts: dict[str, list[float]]) -> None:
        images, chosen = timed(parts, "render 128 scenes", lambda: render_batch(specs, rng, CLIP_BATCH))
        text = torch.stack([tokens[s.text] for s in chosen])

        def clip_pass():
            image_features = model.encode_image(images, normalize=True)
            text_features = model.encode_text(text, normalize=True)
            logits = model.logit_scale.exp() * image_features @ text_features.T
            loss = F.cross_entropy(logits, torch.arange(len(chosen)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        timed(parts, "CLIP forward, backward, step", clip_pass)

    return measured(steps, one_step)


def report(title: str, parts: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(times) for name, times in parts.items()}
    total = sum(medians.values())
    print(f"\n{title}: {1000 * total:.0f} ms a step (medians)")
    print("| part | ms | share |\n|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {1000 * seconds:.0f} | {100 * seconds / total:.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--variants", action="store_true", help="time the UNet's pass in other float paths instead")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.variants:
        parts = unet_pass_variants(args.steps)
        fp32 = statistics.median(parts["fp32"])
        print("| UNet pass (batch 32) | ms | speed against fp32 |\n|---|---|---|")
        for name, times in parts.items():
            print(f"| {name} | {1000 * statistics.median(times):.0f} | {fp32 / statistics.median(times):.2f}x |")
        return
    report("UNet stage", unet_step_parts(args.steps))
    report("CLIP stage", clip_step_parts(args.steps))


if __name__ == "__main__":
    main()
