"""DDPO (Black et al. 2023), the PPO flavour (DDPO_IS), in one loop per epoch:

1. sample trajectories with DDIM (eta > 0) keeping every latent and per-step log-probability;
2. score the final images with the reward function;
3. normalise rewards per prompt (stat buffer) into advantages;
4. for `inner_epochs` passes over the samples, on a random `timestep_fraction` of each
   trajectory's steps (of those from `timestep_first` to `timestep_last`), minimise the PPO clipped objective, optionally plus a KL penalty towards
   the starting model (DPOK, Fan et al. 2023).

Every random draw is keyed by (seed, epoch, global sample index) (draws.py), and all
samples are gathered before training: N processes then take the same optimizer steps as one
process with N times the batch, and a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from align.finetune.config import FinetuneConfig
from align.finetune.ddim_logprob import ddim_step_with_logprob, decode, guided_eps, sample_with_logprob
from align.finetune.draws import draw_seed, prompt_of
from align.finetune.monitor import Monitor, end_epoch, evaluate_and_record
from align.finetune.run_setup import (
    Counters,
    PromptEmbeddings,
    checkpoint_if_due,
    finish,
    load_models,
    make_accelerator,
    make_optimizer,
    run_logger,
    start,
)
from align.finetune.stat_tracking import PerPromptStatTracker, group_advantages
from align.generation.prompts import load_prompts


def train(config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None) -> dict:
    s, tr = config.sampling, config.train
    n_train_steps = config.ddpo_train_timesteps()
    # Gradients accumulate over the trained timesteps of a minibatch too, as in ddpo-pytorch.
    accelerator = make_accelerator(config, out, tr.accumulation * n_train_steps)
    log = run_logger(out, accelerator)
    pipeline, params = load_models(config, accelerator)
    reference_unet = _reference_unet(config, pipeline)
    optimizer = make_optimizer(config, params)
    unet, optimizer = accelerator.prepare(pipeline.unet, optimizer)
    counters = Counters()
    tracker = PerPromptStatTracker(tr.stat_buffer, tr.stat_min_count)
    start(config, out, accelerator, resume_from, [counters, tracker])
    monitor = Monitor(config, out, pipeline, reward_fn, accelerator.device) if accelerator.is_main_process else None

    embed = PromptEmbeddings(pipeline)
    prompts = [p.text for p in load_prompts(config.prompts)]
    scheduler = pipeline.scheduler
    scheduler.set_timesteps(s.steps, device=accelerator.device)
    size = pipeline.unet.config.sample_size
    latent_shape = (pipeline.unet.config.in_channels, size, size)
    P, rank = accelerator.num_processes, accelerator.process_index
    per_epoch = s.batch_size * P * s.batches_per_epoch
    log.info(f"DDPO on {P} process(es): {per_epoch} samples per epoch, {n_train_steps} of {s.steps} timesteps trained")

    if counters.epoch == 0 and not counters.history:
        evaluate_and_record(accelerator, monitor, counters, {"epoch": 0}, log, config)
    for epoch in range(counters.epoch, config.epochs):
        began = time.perf_counter()
        # 1-2. sample and score this process's share; every draw keyed by the global index
        unet.eval()
        local = {"index": [], "latents": [], "log_probs": [], "rewards": []}
        for b in tqdm(range(s.batches_per_epoch), desc=f"epoch {epoch + 1} sampling", disable=not accelerator.is_local_main_process):
            index = [(b * P + rank) * s.batch_size + j for j in range(s.batch_size)]
            batch_prompts = [prompt_of(prompts, config.seed, epoch, i, s.group_size) for i in index]
            generators = [torch.Generator().manual_seed(draw_seed(config.seed, epoch, i)) for i in index]
            embeds = embed(batch_prompts)
            with accelerator.autocast():
                latents, log_probs, timesteps = sample_with_logprob(
                    pipeline.unet, scheduler, embeds, embed([""]).expand_as(embeds), s.guidance, s.eta, generators, latent_shape
                )
                images = decode(pipeline.vae, latents[:, -1])
            local["index"].append(torch.tensor(index, device=accelerator.device))
            local["latents"].append(latents.float())
            local["log_probs"].append(log_probs.float())
            local["rewards"].append(reward_fn(images, batch_prompts, [{}] * len(index)).float().to(accelerator.device))
        sampled = time.perf_counter()
        counters.queries += per_epoch
        # 3. gather all samples in global-index order; advantages from the per-prompt buffer
        samples = {k: accelerator.gather(torch.cat(v)).cpu() for k, v in local.items()}
        order = samples.pop("index").argsort()
        samples = {k: v[order] for k, v in samples.items()}
        all_prompts = [prompt_of(prompts, config.seed, epoch, i, s.group_size) for i in range(per_epoch)]
        rewards = samples["rewards"].numpy()
        if s.group_size:
            advantages, flat_groups = group_advantages(rewards, s.group_size)
        else:
            advantages, flat_groups = tracker.update(all_prompts, rewards), None
        advantages = torch.as_tensor(advantages, dtype=torch.float32)
        advantages = advantages.clamp(-tr.adv_clip_max, tr.adv_clip_max)

        # 4. PPO on this process's slice of each global minibatch
        unet.train()
        stats = []
        for inner in range(tr.inner_epochs):
            shuffle = torch.Generator().manual_seed(draw_seed(config.seed, epoch, 10**9 + inner))
            perm = torch.randperm(per_epoch, generator=shuffle)
            eligible = torch.tensor(config.ddpo_step_range())
            step_order = torch.stack([eligible[torch.randperm(len(eligible), generator=shuffle)]
                                      for _ in range(per_epoch)])[:, :n_train_steps]
            global_batch = tr.batch_size * P
            batches = range(per_epoch // global_batch)
            for k in tqdm(batches, desc=f"epoch {epoch + 1} training", disable=not accelerator.is_local_main_process):
                rows = perm[k * global_batch + rank * tr.batch_size : k * global_batch + (rank + 1) * tr.batch_size]
                embeds = embed([all_prompts[i] for i in rows.tolist()])
                for j in range(n_train_steps):
                    stats.append(_ppo_step(accelerator, unet, reference_unet, optimizer, params, scheduler, config,
                                           samples, advantages, rows, step_order[rows, j], embeds, embed([""]).expand_as(embeds)))
                    counters.optimizer_steps += int(accelerator.sync_gradients)
        trained = time.perf_counter()

        counters.epoch = epoch + 1
        metrics = {
            "epoch": counters.epoch,
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()),
            "perf/samples_per_second": per_epoch / (trained - began),
            "perf/sampling_samples_per_second": per_epoch / (sampled - began),
            **({"reward/flat_groups": flat_groups} if flat_groups is not None else {}),
            **{k: float(np.mean([st[k] for st in stats])) for k in stats[0]},
        }
        metrics = {k: float(accelerator.reduce(torch.tensor(v, device=accelerator.device), "mean")) if k.startswith("train/") else v for k, v in metrics.items()}
        end_epoch(accelerator, monitor, counters, metrics, log, config)
        checkpoint_if_due(config, out, accelerator, counters)
    return finish(config, out, accelerator, pipeline, params, counters)


def _reference_unet(config: FinetuneConfig, pipeline):
    """The starting model for the KL penalty: with LoRA, the same UNet with adapters disabled."""
    if config.train.kl_coef <= 0 or config.lora.enabled:
        return None
    import copy

    return copy.deepcopy(pipeline.unet).requires_grad_(False).eval()


def _ppo_step(accelerator, unet, reference_unet, optimizer, params, scheduler, config, samples, advantages, rows, step_index, embeds, negative):
    s, tr = config.sampling, config.train
    x_t = samples["latents"][rows, step_index].to(accelerator.device)
    x_prev = samples["latents"][rows, step_index + 1].to(accelerator.device)
    old_log_prob = samples["log_probs"][rows, step_index].to(accelerator.device)
    t = scheduler.timesteps[step_index.to(scheduler.timesteps.device)]
    adv = advantages[rows].to(accelerator.device)
    with accelerator.accumulate(unet):
        with accelerator.autocast():
            eps = guided_eps(unet, x_t, t, embeds, negative, s.guidance)
            new = ddim_step_with_logprob(scheduler, eps.float(), t, x_t, s.eta, prev_sample=x_prev)
        ratio = torch.exp(new.log_prob - old_log_prob)
        clipped = torch.clamp(ratio, 1 - tr.clip_range, 1 + tr.clip_range)
        loss = torch.maximum(-adv * ratio, -adv * clipped).mean()
        kl = torch.zeros(())
        if tr.kl_coef > 0:
            with torch.no_grad(), accelerator.autocast(), _starting_model(accelerator, unet, reference_unet) as ref:
                ref_eps = guided_eps(ref, x_t, t, embeds, negative, s.guidance)
                ref_mean = ddim_step_with_logprob(scheduler, ref_eps.float(), t, x_t, s.eta, prev_sample=x_prev).mean
            # KL of two Gaussians with the same std: |mu - mu_ref|^2 / (2 std^2), per latent dimension.
            kl = ((new.mean - ref_mean) ** 2 / (2 * new.std**2)).mean(dim=(1, 2, 3)).mean()
            loss = loss + tr.kl_coef * kl
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(params, tr.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
    return {
        "train/loss": loss.item(),
        "train/approx_kl": 0.5 * ((new.log_prob - old_log_prob) ** 2).mean().item(),
        "train/clip_fraction": ((ratio - 1).abs() > tr.clip_range).float().mean().item(),
        "train/kl_to_start": kl.item(),
    }


class _starting_model:
    """Context giving the starting UNet: adapters switched off (LoRA) or the frozen copy."""

    def __init__(self, accelerator, unet, reference_unet):
        self.reference = reference_unet
        self.unet = accelerator.unwrap_model(unet)

    def __enter__(self):
        if self.reference is not None:
            return self.reference
        self.unet.disable_adapters()
        return self.unet

    def __exit__(self, *exc):
        if self.reference is None:
            self.unet.enable_adapters()
