"""Reward backpropagation (AlignProp, Prabhudesai et al. 2023; DRaFT, Clark et al. 2023).

Each batch is sampled with DDIM from fixed starting noise, and the reward's gradient flows back
through the VAE decoder and the last K sampling steps into the UNet (LoRA) weights:

    loss = -log sigmoid(reward(decode(x_0), prompt)) + beta * pretraining denoising loss

K is drawn per batch from [backprop.min_steps, backprop.max_steps] (AlignProp's randomised
truncation: sometimes the early, high-noise steps that decide the layout get gradient too; min =
max = K is DRaFT-K); steps before the last K run without gradient. -log sigmoid is bounded
below: once the reward is sure an image is aligned, its gradient fades instead of pushing the
logit on forever (reward hacking). The pre-training term (clean_data.py) keeps the model near
clean scenes. The reward must be differentiable: the learned reward (rewards.py). The control arm
(`control: true`) samples and steps alike with the reward's gradient off: only the pre-training
term trains.

Draws are keyed by (seed, epoch, global sample index), as in DDPO, so N processes take the same
steps as one and a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from align.finetune.clean_data import (
    clean_batch,
    clean_prompts,
    denoising_loss,
    pretraining_captions,
    training_scheduler,
)
from align.finetune.config import FinetuneConfig
from align.finetune.ddim_logprob import guided_eps
from align.finetune.draws import draw_seed, prompt_of
from align.finetune.training_run import TrainingRun
from align.generation.prompts import load_prompts


def train(config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None) -> dict:
    s, bp = config.sampling, config.backprop
    run = TrainingRun(config, out, reward_fn, resume_from)
    accelerator, pipeline, embed = run.accelerator, run.pipeline, run.embed
    prompts = [p.text for p in load_prompts(config.prompts)]
    shapes_prompts = clean_prompts(config.prompts)
    clean_captions = pretraining_captions(config.model)
    noise_scheduler = training_scheduler(pipeline)
    scheduler = pipeline.scheduler
    scheduler.set_timesteps(s.steps, device=accelerator.device)
    size = pipeline.unet.config.sample_size
    latent_shape = (pipeline.unet.config.in_channels, size, size)
    P, rank = run.processes, run.rank
    per_epoch = s.batch_size * P * s.batches_per_epoch
    run.log.info(f"reward backpropagation on {P} process(es): {per_epoch} samples per epoch, gradient through the last"
                 f" {bp.min_steps}-{bp.max_steps} of {s.steps} steps, pre-training weight {bp.pretrain_beta}")

    for epoch in run.epochs():
        began = time.perf_counter()
        run.unet.train()
        stats = []
        for b in tqdm(range(s.batches_per_epoch), desc=f"epoch {epoch + 1}", disable=not accelerator.is_local_main_process):
            index = [(b * P + rank) * s.batch_size + j for j in range(s.batch_size)]
            batch_prompts = [prompt_of(prompts, config.seed, epoch, i, s.group_size) for i in index]
            generators = [torch.Generator().manual_seed(draw_seed(config.seed, epoch, i)) for i in index]
            # K is the same on every process: the batch's draw is keyed by its global position only
            k = random.Random(draw_seed(config.seed, epoch, 10**9 + b)).randint(bp.min_steps, bp.max_steps)
            with run.accumulate():
                with accelerator.autocast():
                    images = sample_with_grad(run.unet, scheduler, pipeline.vae, embed(batch_prompts), embed([""]), s,
                                              generators, latent_shape, k, bp.gradient_checkpointing)
                    rewards = reward_fn.differentiable(images, batch_prompts).float()
                    loss = -F.logsigmoid(rewards).mean()
                    pretrain = torch.zeros((), device=accelerator.device)
                    if bp.pretrain_beta > 0:
                        g = torch.Generator().manual_seed(draw_seed(config.seed, epoch, 2 * 10**9 + b * P + rank))
                        clean, captions = clean_batch(pipeline, shapes_prompts, s.batch_size, random.Random(g.initial_seed()),
                                                      clean_captions)
                        pretrain = denoising_loss(run.unet, noise_scheduler, clean, embed(captions), g).mean()
                # the control arm keeps the graph, and so the time, with the reward's gradient off
                total = loss * (0.0 if config.control else 1.0) + bp.pretrain_beta * pretrain
                run.optimizer_step(total)
            stats.append({"reward": rewards.detach().cpu(), "train/loss": total.item(), "train/reward_loss": loss.item(),
                          "train/pretrain_loss": pretrain.item(), "train/backprop_steps": float(k)})
        run.counters.queries += per_epoch
        rewards = accelerator.gather(torch.cat([st.pop("reward") for st in stats]).to(accelerator.device)).cpu()
        metrics = {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std(correction=0)),  # of all samples, as DDPO logs it: 0, not nan, for one
            "perf/samples_per_second": per_epoch / (time.perf_counter() - began),
            **run.mean_over_processes({key: [st[key] for st in stats] for key in stats[0]}),
        }
        run.end_epoch(epoch, metrics)
    return run.finish()


def sample_with_grad(unet, scheduler, vae, embeds, negative, sampling, generators, latent_shape, k, use_checkpointing):
    """Images in [0, 1] from DDIM, differentiable through the last k steps and the decoder."""
    device = embeds.device
    noise = lambda: torch.stack([torch.randn(latent_shape, generator=g) for g in generators]).to(device, embeds.dtype)
    latents = noise() * scheduler.init_noise_sigma
    negative = negative.expand_as(embeds)
    steps = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        graded = i >= steps - k
        step_noise = noise() if sampling.eta > 0 else None  # drawn on every step, so the stream is the same for any k
        with torch.set_grad_enabled(graded):
            if graded and use_checkpointing:
                eps = checkpoint(guided_eps, unet, latents, t, embeds, negative, sampling.guidance, use_reentrant=False)
            else:
                eps = guided_eps(unet, latents, t, embeds, negative, sampling.guidance)
            latents = scheduler.step(eps, t, latents, eta=sampling.eta, variance_noise=step_noise).prev_sample
    images = vae.decode(latents / vae.config.scaling_factor).sample
    return ((images.float() + 1) / 2).clamp(0, 1)
