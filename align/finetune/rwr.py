"""Reward-weighted likelihood (Lee et al. 2023, "Aligning Text-to-Image Models using Human Feedback").

    loss = E_{(x, z) ~ model samples}[ w(x, z) ||eps - eps_theta(x_t, t, z)||^2 ]
         + beta E_{(x, z) ~ clean data}[ ||eps - eps_theta(x_t, t, z)||^2 ]

The weights w come from human labels directly (the mean thumbs-up of each image in a
labels.parquet) or from the reward of fresh samples of the starting model, as a probability that
the image is aligned, as Lee et al. weigh: the learned reward's sigmoid (its head is trained as a
logistic classifier of thumbs up), the oracle's 0 / 1 verdict; CLIP score, which is no
probability, is min-max scaled to [0, 1]. With `control: true` every sample weighs the
dataset's mean weight instead: the control arm, the same samples, steps and clean-data term with
the feedback removed. The clean data is the pre-training distribution: in the shapes world, fresh renders of
training prompts captioned as the model's pretraining data was (the stand-in for LAION).

Online (`rwr.resample_every` = k > 0): every k epochs the current model draws fresh samples of
the same prompts, the reward weighs them, and they replace the dataset: sample, weigh, fine-tune,
repeat (expert iteration / RAFT; the "online samples" Lee et al. leave to future work).

Each round's weighted dataset is built once and cached in OUT (rwr_dataset.pt, then
rwr_dataset_round2.pt, ...), so a resumed run trains on exactly the same samples; minibatches,
noise and timesteps are keyed by (seed, epoch, step).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from align.errors import BadInput
from align.finetune.clean_data import (
    clean_batch,
    clean_prompts,
    denoising_losses,
    encode,
    pretraining_captions,
    training_scheduler,
)
from align.finetune.config import FinetuneConfig
from align.finetune.training_run import TrainingRun
from align.generation.prompts import load_prompts
from align.models import native_image_size
from reward_models import labels as reward_labels


def dataset_file(out: Path, round_: int) -> Path:
    return out / ("rwr_dataset.pt" if round_ == 0 else f"rwr_dataset_round{round_ + 1}.pt")


def train(config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None) -> dict:
    tr, rwr = config.train, config.rwr
    run = TrainingRun(config, out, reward_fn, resume_from)
    accelerator, pipeline, embed = run.accelerator, run.pipeline, run.embed
    noise_scheduler = training_scheduler(pipeline)
    train_prompts = clean_prompts(config.prompts)
    clean_captions = pretraining_captions(config.model)
    global_batch = tr.batch_size * run.processes
    weighted_timesteps = range(rwr.min_timestep, rwr.max_timestep + 1)
    data, data_round = None, None

    for epoch in run.epochs():
        round_ = epoch // rwr.resample_every if rwr.resample_every else 0
        if round_ != data_round:
            data, data_round = round_dataset(config, out, round_, pipeline, reward_fn, accelerator), round_
            n = len(data["prompts"])
            if n < global_batch:
                raise BadInput(f"the RWR dataset has {n} samples, fewer than one global batch of {global_batch}")
            steps_per_epoch = (n // global_batch) * tr.epochs_per_dataset
            run.log.info(f"RWR on {run.processes} process(es), round {round_ + 1}: {n} weighted samples (mean weight"
                         f" {data['weights'].mean():.3f}), beta {rwr.pretrain_beta}")
        began = time.perf_counter()
        run.counters.queries = n * (round_ + 1)  # each round's dataset was scored (or rated) once, before its first epoch
        run.unet.train()
        losses = {"train/loss": [], "train/weighted_loss": [], "train/pretrain_loss": []}
        for step in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", disable=not accelerator.is_local_main_process):
            g = torch.Generator().manual_seed((config.seed * 100_003 + epoch) * 10_000_019 + step)
            rows = torch.randperm(n, generator=g)[:global_batch][run.rank * tr.batch_size : (run.rank + 1) * tr.batch_size]
            latents = data["latents"][rows].to(accelerator.device)
            weights = data["weights"][rows].to(accelerator.device)
            prompts = [data["prompts"][i] for i in rows.tolist()]
            with run.accumulate():
                parts = [(latents, embed(prompts), weighted_timesteps)]
                if rwr.pretrain_beta > 0:  # clean data exists in the shapes world only
                    clean, captions = clean_batch(pipeline, train_prompts, rwr.pretrain_batch_size,
                                                  random.Random(f"{config.seed}-{epoch}-{step}-{run.rank}"), clean_captions)
                    parts.append((clean, embed(captions), None))
                with accelerator.autocast():
                    weighted, *pretrain = denoising_losses(run.unet, noise_scheduler, parts, g)
                pretrain = pretrain[0] if pretrain else torch.zeros(1, device=accelerator.device)
                weighted_loss = (weights * weighted).mean()
                loss = weighted_loss + rwr.pretrain_beta * pretrain.mean()
                run.optimizer_step(loss)
            for key, value in (("train/loss", loss), ("train/weighted_loss", weighted_loss), ("train/pretrain_loss", pretrain.mean())):
                losses[key].append(value.item())
        metrics = {"perf/samples_per_second": steps_per_epoch * global_batch / (time.perf_counter() - began),
                   "rwr/round": round_ + 1, "rwr/mean_weight": float(data["weights"].mean())}
        run.end_epoch(epoch, metrics | run.mean_over_processes(losses))
    return run.finish()


def round_dataset(config: FinetuneConfig, out: Path, round_: int, pipeline, reward_fn, accelerator) -> dict:
    """The round's dataset, built by the main process from the current model unless OUT holds it."""
    path = dataset_file(out, round_)
    if accelerator.is_main_process and not path.is_file():
        partial = path.with_suffix(".partial")
        torch.save(build_dataset(config, pipeline, reward_fn, accelerator, round_), partial)
        partial.replace(path)  # a run killed while sampling leaves no half-written dataset to resume from
    accelerator.wait_for_everyone()
    return torch.load(path)


def build_dataset(config: FinetuneConfig, pipeline, reward_fn, accelerator, round_: int) -> dict:
    """{"latents", "weights", "prompts"}: from human labels, or from fresh samples and their reward."""
    if config.rwr.source == "labels":
        prompts, images, weights = _from_labels(Path(config.rwr.labels), config.prompts, native_image_size(pipeline))
    else:
        prompts, images, weights = _from_samples(config, pipeline, reward_fn, accelerator, round_)
    latents = torch.cat([encode(pipeline, images[i : i + 64]) for i in range(0, len(images), 64)])
    if config.control:  # the control arm: the feedback removed, the loss's scale kept
        weights = torch.full_like(weights, weights.float().mean().item())
    return {"latents": latents.cpu(), "weights": weights.float(), "prompts": prompts}


def read_labels(path: Path, prompts: str) -> pd.DataFrame:
    """One row per rated image of the fine-tuning prompts: image_path, prompt, and the share of
    thumbs up (several raters). Read and checked by the reward model's own reader (train-reward
    refuses what RWR refuses); ratings of other prompts (a held-out split) are left out."""
    labels = reward_labels.read_labels(path)
    wanted = {p.text for p in load_prompts(prompts)}
    labels = labels[labels["prompt"].isin(wanted)]
    if labels.empty:
        raise BadInput(f"labels file {path} holds no ratings of the fine-tuning prompts (prompts: {prompts})")
    return labels.groupby(["image_path", "prompt"], sort=True)["label"].mean().reset_index()


def _from_labels(path: Path, prompts: str, size: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    per_image = read_labels(path, prompts)
    images = []
    for image_path in per_image["image_path"]:
        try:
            with Image.open(image_path) as image:
                pixels = np.array(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        except OSError:
            raise BadInput(f"image {image_path} listed in {path} is missing or corrupt") from None
        images.append(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    return list(per_image["prompt"]), torch.stack(images), torch.tensor(per_image["label"].to_numpy())


@torch.no_grad()
def _from_samples(config: FinetuneConfig, pipeline, reward_fn, accelerator, round_: int):
    s = config.sampling
    prompts = [p.text for p in load_prompts(config.prompts) for _ in range(config.rwr.images_per_prompt)]
    first_seed = config.seed + round_ * len(prompts)  # each round draws new noise
    batches = []
    pipeline.unet.eval()
    for first in tqdm(range(0, len(prompts), s.batch_size), desc="RWR samples"):
        batch = prompts[first : first + s.batch_size]
        generators = [torch.Generator(pipeline.device).manual_seed(first_seed + first + i) for i in range(len(batch))]
        with accelerator.autocast():
            batches.append(pipeline(batch, num_inference_steps=s.steps, guidance_scale=s.guidance, eta=s.eta,
                                    generator=generators, output_type="pt").images.float().cpu())
    pipeline.unet.train()
    images = torch.cat(batches)
    rewards = torch.cat([reward_fn(images[i : i + 64], prompts[i : i + 64], [{}] * len(prompts[i : i + 64])) for i in range(0, len(prompts), 64)])
    return prompts, images, reward_weights(rewards, config.reward.kind)


def reward_weights(rewards: torch.Tensor, kind: str) -> torch.Tensor:
    """Each sample's weight in [0, 1]: the reward as a probability of being aligned."""
    if kind == "learned":
        return torch.sigmoid(rewards)
    if kind == "oracle":
        return rewards
    span = rewards.max() - rewards.min()
    return (rewards - rewards.min()) / span if span > 0 else torch.ones_like(rewards)
