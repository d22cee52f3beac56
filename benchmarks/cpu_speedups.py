"""Which speed-ups pay on this CPU for the tiny pipeline: sampling and the RWR training step.

    python benchmarks/cpu_speedups.py [--repeats 3] [--only rwr|ppo|lora-sampling|sampling]

Every variant runs in this one process against its part's baseline, named below (these machines
are noisy: only ratios within one run mean anything), and reports how far its output is from the
baseline's. For sampling and the RWR step the baseline is the plain fp32 path.

Sampling (the pipeline, batch 32, 20 DDIM steps, guidance 5): plain; channels_last UNet and VAE;
bf16 autocast; torch.compile of the UNet (compile time reported apart).
RWR step (LoRA rank 16 on every layer, 32 weighted samples + 16 clean renders, forward and
backward): plain (two UNet calls, as rwr.py did); one UNet call on the concatenated batch, same draws;
bf16 autocast; the share of the step spent rendering and encoding the clean batch.
Sampling with a LoRA: the LoRA fused into the weights, against diffusers' adapter layers as loaded (the baseline).
DDPO's PPO step (LoRA rank 4 on attention, batch 16, guidance 5, 10 trained timesteps, forward and
backward, as benchmarks/ddpo_vs_trl.py sets it): one UNet call per timestep (as ddpo.py does; the
baseline), against the trained timesteps stacked into one call or two; if a call's fixed cost mattered, stacking would win.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import numpy as np
import torch

from align.finetune.clean_data import (
    clean_batch,
    clean_prompts,
    denoising_loss,
    denoising_losses,
    training_scheduler,
)
from align.finetune.config import EVERY_LAYER_TYPE, LoraSettings
from align.finetune.ddim_logprob import ddim_step_with_logprob, guided_eps
from align.finetune.lora import add_lora, save_lora
from align.finetune.training_run import PromptEmbeddings
from align.generation.prompts import load_prompts
from align.models import load_pipeline

PROMPTS = [p.text for p in load_prompts("train")][:32]


def best_of(repeats: int, fn) -> float:
    """Seconds of the fastest of `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def draw(pipeline, autocast: bool = False) -> np.ndarray:
    """The 32 prompts at seeds 0..31: 20 DDIM steps, guidance 5, as `generate` draws them."""
    generators = [torch.Generator().manual_seed(i) for i in range(len(PROMPTS))]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), torch.no_grad():
        return pipeline(PROMPTS, num_inference_steps=20, guidance_scale=5.0, generator=generators, output_type="np").images


def sampling(repeats: int) -> None:
    plain = load_pipeline("shapes-tiny-sd")
    reference = draw(plain)
    base = best_of(repeats, lambda: draw(plain))
    print(f"sampling, batch 32: plain fp32 {len(PROMPTS) / base:.1f} images/s")

    def report(name: str, seconds: float, images: np.ndarray) -> None:
        print(f"  {name:<28} {base / seconds:5.2f}x   max pixel difference {np.abs(images - reference).max() * 255:.1f}/255")

    cl = load_pipeline("shapes-tiny-sd")
    cl.unet.to(memory_format=torch.channels_last)
    cl.vae.to(memory_format=torch.channels_last)
    report("channels_last", best_of(repeats, lambda: draw(cl)), draw(cl))
    report("bf16 autocast", best_of(repeats, lambda: draw(plain, True)), draw(plain, True))
    compiled = load_pipeline("shapes-tiny-sd")
    compiled.unet = torch.compile(compiled.unet)
    began = time.perf_counter()
    first = draw(compiled)
    print(f"  torch.compile: first batch (compiling) {time.perf_counter() - began:.0f} s")
    report("torch.compile(unet)", best_of(repeats, lambda: draw(compiled)), first)


def lora_sampling(repeats: int) -> None:
    """A LoRA as diffusers' load_lora_weights leaves it (adapter layers beside the weights) against
    the same LoRA fused into the weights, as align/models.py's load_pipeline now loads it."""
    from diffusers import StableDiffusionPipeline

    from align.models import resolve

    print("sampling with a LoRA, batch 32:")
    for name, settings in (("rank 8 attention", LoraSettings(rank=8, alpha=8.0)),
                           ("rank 16 every layer", LoraSettings(rank=16, alpha=16.0, targets=EVERY_LAYER_TYPE))):
        with tempfile.TemporaryDirectory() as lora:
            unet = load_pipeline("shapes-tiny-sd").unet
            for p in add_lora(unet, settings):
                p.data.normal_(std=0.01, generator=torch.Generator().manual_seed(p.numel()))
            save_lora(unet, lora)
            unfused = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None)
            unfused.set_progress_bar_config(disable=True)
            unfused.load_lora_weights(lora)
            fused = load_pipeline("shapes-tiny-sd", lora=lora)
            base, seconds = best_of(repeats, lambda: draw(unfused)), best_of(repeats, lambda: draw(fused))
            print(f"  {name:<28} fused {base / seconds:5.2f}x unfused ({len(PROMPTS) / base:.1f} -> {len(PROMPTS) / seconds:.1f}"
                  f" images/s), max pixel difference {np.abs(draw(fused) - draw(unfused)).max() * 255:.2f}/255")


def rwr_step(repeats: int) -> None:
    pipeline = load_pipeline("shapes-tiny-sd")
    params = add_lora(pipeline.unet, LoraSettings(rank=16, alpha=16.0, targets=EVERY_LAYER_TYPE))
    unet, scheduler, embed = pipeline.unet, training_scheduler(pipeline), PromptEmbeddings(pipeline)
    train_prompts = clean_prompts("train")
    texts = [p.text for p in train_prompts][:32]
    latents = torch.randn(32, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    clean, captions = clean_batch(pipeline, train_prompts, 16, random.Random(0))

    def two_calls(autocast: bool = False):
        g = torch.Generator().manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = denoising_loss(unet, scheduler, latents, embed(texts), g).mean()
            loss = loss + denoising_loss(unet, scheduler, clean, embed(captions), g).mean()
        loss.backward()
        return grads()

    def one_call():
        g = torch.Generator().manual_seed(1)
        weighted, pretrain = denoising_losses(unet, scheduler, [(latents, embed(texts), None), (clean, embed(captions), None)], g)
        (weighted.mean() + pretrain.mean()).backward()
        return grads()

    def grads():
        flat = torch.cat([p.grad.flatten() for p in params])
        for p in params:
            p.grad = None
        return flat

    base = best_of(repeats, two_calls)
    print(f"RWR step (LoRA r16 all layers, 32 + 16 samples): plain {48 / base:.0f} samples/s, {base * 1000:.0f} ms")
    reference = two_calls()
    for name, fn in (("one UNet call (rwr.py now)", one_call), ("bf16 autocast", lambda: two_calls(True))):
        seconds = best_of(repeats, fn)
        cosine = torch.nn.functional.cosine_similarity(fn(), reference, dim=0).item()
        print(f"  {name:<28} {base / seconds:5.2f}x   gradient cosine to plain {cosine:.4f}")
    render = best_of(repeats, lambda: clean_batch(pipeline, train_prompts, 16, random.Random(0)))
    print(f"  rendering + encoding the clean batch: {render * 1000:.0f} ms, {render / base:.0%} of a plain step")


def ppo_step(repeats: int) -> None:
    pipeline = load_pipeline("shapes-tiny-sd")
    params = add_lora(pipeline.unet, LoraSettings(rank=4, alpha=4.0))
    unet, scheduler, embed = pipeline.unet, pipeline.scheduler, PromptEmbeddings(pipeline)
    scheduler.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    rows, steps = 16, 10
    x_t, x_prev = torch.randn(rows, steps, 4, 16, 16, generator=g), torch.randn(rows, steps, 4, 16, 16, generator=g)
    t = scheduler.timesteps[torch.randint(0, 20, (rows, steps), generator=g)]
    advantages = torch.randn(rows, 1, generator=g).expand(rows, steps)
    embeds = embed(PROMPTS[:rows])

    def log_prob(cols: slice) -> torch.Tensor:
        """Log-probability of the taken steps of timesteps `cols`, all rows, in one UNet call."""
        k = cols.stop - cols.start
        e = embeds.repeat_interleave(k, 0)
        eps = guided_eps(unet, x_t[:, cols].flatten(0, 1), t[:, cols].flatten(), e, embed([""]).expand_as(e), 5.0)
        return ddim_step_with_logprob(scheduler, eps, t[:, cols].flatten(), x_t[:, cols].flatten(0, 1), 1.0,
                                      prev_sample=x_prev[:, cols].flatten(0, 1)).log_prob.view(rows, k)

    with torch.no_grad():
        old = log_prob(slice(0, steps)) - 1e-5  # ratios near 1, inside PPO's clip range as in a first inner epoch

    def step(per_call: int):
        for start in range(0, steps, per_call):
            cols = slice(start, start + per_call)
            ratio = torch.exp(log_prob(cols) - old[:, cols])
            adv = advantages[:, cols]
            loss = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - 1e-4, 1 + 1e-4)).mean()
            (loss * per_call / steps).backward()  # the mean over every trained timestep, as accumulation gives
        flat = torch.cat([p.grad.flatten() for p in params])
        for p in params:
            p.grad = None
        return flat

    base = best_of(repeats, lambda: step(1))
    print(f"PPO step (LoRA r4 attention, 16 samples x 10 timesteps): one call per timestep {rows / base:.1f} samples/s")
    reference = step(1)
    for per_call in (steps, steps // 2):
        seconds = best_of(repeats, lambda: step(per_call))
        cosine = torch.nn.functional.cosine_similarity(step(per_call), reference, dim=0).item()
        print(f"  {per_call} timesteps per UNet call{'':<8} {base / seconds:5.2f}x   gradient cosine to one per call {cosine:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=list(PARTS), help="run one part (default: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, part in PARTS.items():
        if args.only in (None, name):
            part(args.repeats)


PARTS = {"rwr": rwr_step, "ppo": ppo_step, "lora-sampling": lora_sampling, "sampling": sampling}


if __name__ == "__main__":
    main()
