"""DDPO (Black et al. 2023), the PPO flavour (DDPO_IS), in one loop per epoch:

1. sample trajectories with DDIM (eta > 0) keeping every latent and per-step log-probability;
2. score the final images with the reward function;
3. normalise rewards within each group of k images of a prompt (or per prompt, over a stat buffer)
   into advantages; the control arm (`control: true`) sets them to zero, so only the KL term trains;
4. for `inner_epochs` passes over the samples, on a random `timestep_fraction` of each
   trajectory's steps (of those from `timestep_first` to `timestep_last`), minimise the PPO clipped objective, optionally plus a KL penalty towards
   the starting model (DPOK, Fan et al. 2023).

Every random draw is keyed by (seed, epoch, global sample index) (draws.py), and all
samples are gathered before training: N processes then take the same optimizer steps as one
process with N times the batch, and a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from align.finetune.config import FinetuneConfig
from align.finetune.ddim_logprob import ddim_step_with_logprob, decode, guided_eps, sample_with_logprob
from align.finetune.draws import draw_seed, prompt_of
from align.finetune.stat_tracking import PerPromptStatTracker, group_advantages
from align.finetune.training_run import TrainingRun
from align.generation.prompts import load_prompts


@dataclass
class Minibatch:
    """One PPO step's slice of the epoch's trajectories: which rows, at which of their sampling steps."""

    rows: torch.Tensor
    step_index: torch.Tensor
    embeds: torch.Tensor
    negative: torch.Tensor


def train(config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None) -> dict:
    s, tr = config.sampling, config.train
    n_train_steps = config.ddpo_train_timesteps()
    tracker = PerPromptStatTracker(tr.stat_buffer, tr.stat_min_count)
    # Gradients accumulate over the trained timesteps of a minibatch too, as in ddpo-pytorch.
    run = TrainingRun(config, out, reward_fn, resume_from, accumulation=tr.accumulation * n_train_steps,
                      state=(tracker,), starting_model=tr.kl_coef > 0)
    accelerator, pipeline, embed = run.accelerator, run.pipeline, run.embed
    prompts = [p.text for p in load_prompts(config.prompts)]
    scheduler = pipeline.scheduler
    scheduler.set_timesteps(s.steps, device=accelerator.device)
    size = pipeline.unet.config.sample_size
    latent_shape = (pipeline.unet.config.in_channels, size, size)
    P, rank = run.processes, run.rank
    per_epoch = s.batch_size * P * s.batches_per_epoch
    run.log.info(f"DDPO on {P} process(es): {per_epoch} samples per epoch, {n_train_steps} of {s.steps} timesteps trained")

    for epoch in run.epochs():
        began = time.perf_counter()
        # 1-2. sample and score this process's share; every draw keyed by the global index
        run.unet.eval()
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
        run.counters.queries += per_epoch
        # 3. gather all samples in global-index order; advantages from the groups or the per-prompt buffer
        samples = {k: accelerator.gather(torch.cat(v)).cpu() for k, v in local.items()}
        order = samples.pop("index").argsort()
        samples = {k: v[order] for k, v in samples.items()}
        all_prompts = [prompt_of(prompts, config.seed, epoch, i, s.group_size) for i in range(per_epoch)]
        rewards = samples["rewards"].numpy()
        if s.group_size:
            advantages, flat_groups = group_advantages(rewards, s.group_size)
        else:
            advantages, flat_groups = tracker.update(all_prompts, rewards), None
        samples["advantages"] = torch.as_tensor(advantages, dtype=torch.float32).clamp(-tr.adv_clip_max, tr.adv_clip_max)
        if config.control:  # the feedback removed: every image as good as its group
            samples["advantages"] = torch.zeros_like(samples["advantages"])

        # 4. PPO on this process's slice of each global minibatch
        run.unet.train()
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
                    minibatch = Minibatch(rows, step_order[rows, j], embeds, embed([""]).expand_as(embeds))
                    stats.append(_ppo_step(run, scheduler, samples, minibatch))
        trained = time.perf_counter()

        metrics = {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()),
            "perf/samples_per_second": per_epoch / (trained - began),
            "perf/sampling_samples_per_second": per_epoch / (sampled - began),
            **({"reward/flat_groups": flat_groups} if flat_groups is not None else {}),
            **run.mean_over_processes({key: [st[key] for st in stats] for key in stats[0]}),
        }
        run.end_epoch(epoch, metrics)
    return run.finish()


def _ppo_step(run: TrainingRun, scheduler, samples: dict, batch: Minibatch) -> dict:
    """The clipped PPO objective (plus the KL penalty) on one minibatch at one sampling step each."""
    s, tr, device = run.config.sampling, run.config.train, run.accelerator.device
    x_t = samples["latents"][batch.rows, batch.step_index].to(device)
    x_prev = samples["latents"][batch.rows, batch.step_index + 1].to(device)
    old_log_prob = samples["log_probs"][batch.rows, batch.step_index].to(device)
    t = scheduler.timesteps[batch.step_index.to(scheduler.timesteps.device)]
    adv = samples["advantages"][batch.rows].to(device)
    with run.accumulate():
        with run.accelerator.autocast():
            eps = guided_eps(run.unet, x_t, t, batch.embeds, batch.negative, s.guidance)
            new = ddim_step_with_logprob(scheduler, eps.float(), t, x_t, s.eta, prev_sample=x_prev)
        ratio = torch.exp(new.log_prob - old_log_prob)
        clipped = torch.clamp(ratio, 1 - tr.clip_range, 1 + tr.clip_range)
        loss = torch.maximum(-adv * ratio, -adv * clipped).mean()
        kl = torch.zeros(())
        if tr.kl_coef > 0:
            with torch.no_grad(), run.accelerator.autocast(), run.starting_unet() as start:
                start_eps = guided_eps(start, x_t, t, batch.embeds, batch.negative, s.guidance)
                start_mean = ddim_step_with_logprob(scheduler, start_eps.float(), t, x_t, s.eta, prev_sample=x_prev).mean
            # KL of two Gaussians with the same std: |mu - mu_start|^2 / (2 std^2), per latent dimension.
            kl = ((new.mean - start_mean) ** 2 / (2 * new.std**2)).mean(dim=(1, 2, 3)).mean()
            loss = loss + tr.kl_coef * kl
        run.optimizer_step(loss)
    return {
        "train/loss": loss.item(),
        "train/approx_kl": 0.5 * ((new.log_prob - old_log_prob) ** 2).mean().item(),
        "train/clip_fraction": ((ratio - 1).abs() > tr.clip_range).float().mean().item(),
        "train/kl_to_start": kl.item(),
    }
