"""DDPO through TRL 0.23's DDPOTrainer (`backend: trl`), for users who know TRL's trainer.

The run's prompts, reward, sampling and PPO settings are mapped onto TRL's DDPOConfig; TRL
samples and trains, and this module evaluates on held-out prompts around it, keeps the same
history, run log and OUT/final LoRA as the native backend. TRL 0.23 is the last release that
has DDPOTrainer: `pip install 't2i-align[trl]'`.

What TRL's trainer does not have, the config refuses (FinetuneConfig.check): a KL penalty, a
LoRA other than its fixed rank 4 / alpha 4 on to_q, to_k, to_v, to_out.0, and checkpoints for
`--resume`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from align.finetune import checkpoints
from align.finetune.config import FinetuneConfig
from align.finetune.monitor import Monitor, end_epoch, evaluate_and_record
from align.finetune.training_run import Counters, finish, run_logger
from align.generation.prompts import load_prompts
from align.models import resolve

NEVER = 10**9  # TRL saves its accelerator state every save_freq epochs; this backend does not resume


def train(config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None) -> dict:
    from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline

    s, t = config.sampling, config.train
    trl_config = DDPOConfig(
        num_epochs=config.epochs, seed=config.seed, mixed_precision=config.mixed_precision, log_with=config.log_with,
        project_kwargs={"project_dir": str(out), "logging_dir": str(out / "logs")}, save_freq=NEVER,
        sample_num_steps=s.steps, sample_eta=s.eta, sample_guidance_scale=s.guidance,
        sample_batch_size=s.batch_size, sample_num_batches_per_epoch=s.batches_per_epoch,
        train_batch_size=t.batch_size, train_gradient_accumulation_steps=t.accumulation, train_learning_rate=t.lr,
        train_adam_weight_decay=t.weight_decay, train_max_grad_norm=t.max_grad_norm,
        train_num_inner_epochs=t.inner_epochs, train_clip_range=t.clip_range, train_adv_clip_max=t.adv_clip_max,
        train_timestep_fraction=t.timestep_fraction, per_prompt_stat_tracking=True,
        per_prompt_stat_tracking_buffer_size=t.stat_buffer, per_prompt_stat_tracking_min_count=t.stat_min_count,
    )
    prompts = [p.text for p in load_prompts(config.prompts)]
    draw = random.Random(config.seed)
    epoch_rewards: list[np.ndarray] = []

    def scored(images, batch_prompts, metadata):
        rewards = reward_fn(images.float(), list(batch_prompts), list(metadata)).float()
        epoch_rewards.append(rewards.numpy())
        return rewards, {}

    pipeline = DefaultDDPOStableDiffusionPipeline(str(resolve(config.model)), use_lora=config.lora.enabled)
    trainer = DDPOTrainer(trl_config, scored, lambda: (draw.choice(prompts), {}), pipeline)
    accelerator, sd = trainer.accelerator, pipeline.sd_pipeline
    log = run_logger(out, accelerator)
    if accelerator.is_main_process:
        checkpoints.write_config(out, config)
    monitor = Monitor(config, out, sd, reward_fn, accelerator.device) if accelerator.is_main_process else None
    per_epoch = s.batch_size * accelerator.num_processes * s.batches_per_epoch
    log.info(f"DDPO with TRL's DDPOTrainer on {accelerator.num_processes} process(es): {per_epoch} samples per epoch")

    counters = Counters()
    evaluate_and_record(accelerator, monitor, counters, {"epoch": 0}, log, config)
    for epoch in range(config.epochs):
        began = time.perf_counter()
        epoch_rewards.clear()
        counters.optimizer_steps = trainer.step(epoch, counters.optimizer_steps)
        counters.queries += per_epoch
        rewards = np.concatenate(epoch_rewards)  # this process's samples
        counters.epoch = epoch + 1
        metrics = {"epoch": counters.epoch, "reward/mean": float(rewards.mean()), "reward/std": float(rewards.std()),
                   "perf/samples_per_second": per_epoch / (time.perf_counter() - began)}
        end_epoch(accelerator, monitor, counters, metrics, log, config)
    return finish(config, out, accelerator, sd, [p for p in sd.unet.parameters() if p.requires_grad], counters)
