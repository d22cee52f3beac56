"""How much signal is in each method's gradient? Gradient noise scales at the demo's starting point.

    python experiments/gradient_noise_scale.py --reward runs/demo/reward-r1 [--batches 16] [--out runs/bench-gradient-noise]

Hypothesis (the fine-tuning issue: in the demo's 1,280 reward queries no method moves the model,
not even with the oracle as reward, while the pretraining's supervised loss moves it about 1.8
points of seen alignment per 1,000 steps of 32 clean renders): DDPO's gradient at the demo's
settings is so noisy that 1,280 samples cannot find its direction. Measured: the gradient noise
scale B = tr(Sigma) / |G|^2 (McCandlish et al. 2018, "An empirical model of large-batch
training"): the batch size, in samples, at which a step's noise is as large as its signal. A
step of b samples has signal-to-noise b / B, and a run needs many times B samples to follow G.
Every gradient is taken with respect to the same fresh LoRA on the shipped UNet (DDPO's
starting point), from K independent batches:

    DDPO             -mean(advantage x log p(x_t-1 | x_t)) over DDIM steps 1-10 (the demo's),
                     32 samples a batch (one demo epoch: a training prompt per image, eta 1),
                     advantages normalised over the batch; the learned reward and the oracle
                     score the same trajectories; and grouped (sampling.group_size=8: 4 prompts
                     x 8 images a batch, advantages within each prompt's group)
    reward backprop  -log sigmoid(learned reward) through the decoder and the last k ~ U[1, 20]
                     DDIM steps (eta 0), 8 samples a batch (the demo's)
    supervised       the pretraining's denoising loss on fresh clean renders of training prompts
                     with their true captions, 32 a batch

Estimator: with g_k the K batch gradients of b samples each, |G|^2 ~ the mean of g_i . g_j and
tr(Sigma) ~ b x the mean of |g_i - g_j|^2 / 2, both over pairs of distinct batches (unbiased); the
95% interval is a bootstrap over the K batches that keeps to pairs of distinct originals. Where |G|^2 <= 0 the K x b samples do not
resolve a direction at all (B reported as infinite). About 50 s a batch here (2 CPU cores): 20
minutes for 24.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from align.config import load_config
from align.finetune.clean_data import clean_batch, clean_prompts, denoising_loss, training_scheduler
from align.finetune.config import FinetuneConfig
from align.finetune.ddim_logprob import ddim_step_with_logprob, decode, guided_eps, sample_with_logprob
from align.finetune.draws import draw_seed, prompt_of
from align.finetune.reward_backprop import sample_with_grad
from align.finetune.rewards import make_reward_fn, oracle_reward
from align.finetune.stat_tracking import group_advantages
from align.finetune.training_run import PromptEmbeddings, load_models, make_accelerator
from align.generation.prompts import load_prompts

ROOT = Path(__file__).resolve().parent.parent

DDPO_BATCH, BACKPROP_BATCH, SUPERVISED_BATCH = 32, 8, 32
GROUP_SIZE = 8  # sampling.group_size of experiments/ddpo_grouping.py: 4 prompts x 8 images a batch
DDPO_STEPS = range(10)  # DDIM steps 1-10, the demo's DDPO (demo.yaml: train.timestep_last=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", required=True, help="reward model directory, e.g. runs/demo/reward-r1")
    parser.add_argument("--batches", type=int, default=16, help="K: independent batches per gradient")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-gradient-noise", help="the batch gradients are kept here and reused")
    args = parser.parse_args()
    saved = args.out / f"gradients-{args.batches}.npz"
    if not saved.is_file():
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez(saved, **{name: torch.stack(rows).numpy() for name, rows in batch_gradients(args.reward, args.batches).items()})
    gradients = dict(np.load(saved))

    batch_sizes = {"supervised denoising (pretraining)": SUPERVISED_BATCH, "reward backprop, learned reward": BACKPROP_BATCH}
    print("\n| gradient | samples a batch | batches | noise scale B, samples [95%] | cosine of the two halves' means |")
    print("|---|---|---|---|---|")
    for name, rows in gradients.items():
        b = batch_sizes.get(name, DDPO_BATCH)
        scale, low, high = noise_scale(rows @ rows.T, b)
        half = len(rows) // 2
        a, c = rows[:half].mean(0), rows[half:].mean(0)
        print(f"| {name} | {b} | {len(rows)} | {fmt(scale)} [{fmt(low)}, {fmt(high)}] | {a @ c / np.sqrt((a @ a) * (c @ c)):+.3f} |")


def batch_gradients(reward: str, batches: int) -> dict[str, list[torch.Tensor]]:
    """Each objective's gradient on `batches` independent batches, flattened."""
    torch.set_num_threads(2)
    ddpo = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml", [f"reward.path={reward}"])
    backprop = load_config(FinetuneConfig, ROOT / "configs/shapes/reward_backprop.yaml", [f"reward.path={reward}"])
    accelerator = make_accelerator(ddpo, Path(tempfile.mkdtemp()), 1)
    pipeline, params = load_models(ddpo, accelerator)  # one fresh LoRA: every gradient at the same point
    learned = make_reward_fn(ddpo.reward, accelerator.device)
    embed = PromptEmbeddings(pipeline)
    prompts = [p.text for p in load_prompts(ddpo.prompts)]
    gradients: dict[str, list[torch.Tensor]] = {}
    for k in range(batches):
        for group_size in (0, GROUP_SIZE):
            for name, g in ddpo_gradients(pipeline, params, embed, prompts, ddpo, learned, k, group_size).items():
                gradients.setdefault(name, []).append(g)
        gradients.setdefault("reward backprop, learned reward", []).append(backprop_gradient(pipeline, params, embed, prompts, backprop, learned, k))
        gradients.setdefault("supervised denoising (pretraining)", []).append(supervised_gradient(pipeline, params, embed, k))
        print(f"batch {k + 1}/{batches} done", file=sys.stderr, flush=True)
    return gradients


def ddpo_gradients(pipeline, params, embed, prompts, config, learned, k, group_size) -> dict[str, torch.Tensor]:
    """The demo's DDPO gradient on batch k, once per reward, on the same trajectories; with a
    group size, 32 / group_size prompts and advantages within each prompt's group."""
    s, unet, scheduler = config.sampling, pipeline.unet, pipeline.scheduler
    scheduler.set_timesteps(s.steps)
    index = [(2 * 10**6 if group_size else 0) + k * DDPO_BATCH + i for i in range(DDPO_BATCH)]
    batch = [prompt_of(prompts, config.seed, 0, i, group_size) for i in index]
    embeds, negative = embed(batch), embed([""]).expand(len(batch), -1, -1)
    size = unet.config.sample_size
    with torch.no_grad():
        latents, _, timesteps = sample_with_logprob(unet, scheduler, embeds, negative, s.guidance, s.eta,
                                                    [torch.Generator().manual_seed(draw_seed(config.seed, 0, i)) for i in index],
                                                    (unet.config.in_channels, size, size))
        images = decode(pipeline.vae, latents[:, -1])
    advantages = {}
    for reward, reward_fn in (("learned", learned), ("oracle", oracle_reward())):
        rewards = reward_fn(images, batch, [{}] * len(batch)).float()
        name = f"DDPO{f', groups of {group_size}' if group_size else ''}, {reward} reward"
        advantages[name] = (torch.as_tensor(group_advantages(rewards.numpy(), group_size)[0], dtype=torch.float32) if group_size
                            else (rewards - rewards.mean()) / (rewards.std() + 1e-8))
    sums = {name: torch.zeros(()) for name in advantages}
    for j in DDPO_STEPS:
        t = timesteps[j]
        eps = guided_eps(unet, latents[:, j], t, embeds, negative, s.guidance)
        log_prob = ddim_step_with_logprob(scheduler, eps.float(), t, latents[:, j], s.eta, prev_sample=latents[:, j + 1]).log_prob
        for n, (name, adv) in enumerate(advantages.items()):
            grads = torch.autograd.grad(-(adv * log_prob).mean(), params, retain_graph=n < len(advantages) - 1)
            sums[name] = sums[name] + flat(grads) / len(DDPO_STEPS)
    return sums


def backprop_gradient(pipeline, params, embed, prompts, config, learned, k) -> torch.Tensor:
    s, bp = config.sampling, config.backprop
    pipeline.scheduler.set_timesteps(s.steps)
    index = [10**6 + k * BACKPROP_BATCH + i for i in range(BACKPROP_BATCH)]  # draws apart from DDPO's
    batch = [prompt_of(prompts, config.seed, 0, i, 0) for i in index]
    steps = random.Random(draw_seed(config.seed, 0, 10**9 + k)).randint(bp.min_steps, bp.max_steps)
    size = pipeline.unet.config.sample_size
    images = sample_with_grad(pipeline.unet, pipeline.scheduler, pipeline.vae, embed(batch), embed([""]), s,
                              [torch.Generator().manual_seed(draw_seed(config.seed, 0, i)) for i in index],
                              (pipeline.unet.config.in_channels, size, size), steps, False)
    loss = -F.logsigmoid(learned.differentiable(images, batch).float()).mean()
    return flat(torch.autograd.grad(loss, params))


def supervised_gradient(pipeline, params, embed, k) -> torch.Tensor:
    generator = torch.Generator().manual_seed(draw_seed(0, 0, 2 * 10**9 + k))
    clean, captions = clean_batch(pipeline, clean_prompts("train"), SUPERVISED_BATCH, random.Random(generator.initial_seed()))
    loss = denoising_loss(pipeline.unet, training_scheduler(pipeline), clean, embed(captions), generator).mean()
    return flat(torch.autograd.grad(loss, params))


def flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads]).double()


def noise_scale(gram: np.ndarray, batch: int, resamples: int = 2000) -> tuple[float, float, float]:
    """B and its bootstrap interval from the Gram matrix of the K batch gradients (g_i . g_j). Both
    terms are means over pairs of distinct batches (|G|^2: g_i . g_j; tr(Sigma) / b: |g_i - g_j|^2 / 2),
    which is what makes them unbiased; a resample keeps to pairs of distinct originals, since a batch
    drawn twice would count its own noise as signal."""
    K, diag = len(gram), np.diag(gram)

    def estimate(counts: np.ndarray) -> float:
        weights = np.outer(counts, counts)
        np.fill_diagonal(weights, 0)
        signal = (weights * gram).sum() / weights.sum()
        spread = (weights * (diag[:, None] + diag[None, :] - 2 * gram)).sum() / (2 * weights.sum())
        return batch * spread / signal if signal > 0 else float("inf")

    rng = np.random.default_rng(0)
    boot = [estimate(np.bincount(rng.integers(0, K, K), minlength=K).astype(float)) for _ in range(resamples)]
    # no interpolation between resamples: half of inf and a number is no number
    return estimate(np.ones(K)), float(np.percentile(boot, 2.5, method="lower")), float(np.percentile(boot, 97.5, method="higher"))


def fmt(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:,.0f}"


if __name__ == "__main__":
    main()
