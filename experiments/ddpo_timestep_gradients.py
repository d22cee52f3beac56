"""Which DDIM steps carry DDPO's gradient? The policy-gradient norm at each step of the schedule.

    python experiments/ddpo_timestep_gradients.py --reward runs/demo/reward-r1 [--batches 4] [--batch-size 16]

Hypothesis (the fine-tuning issue): with 20 DDIM steps at eta 1, the last step (t = 51 -> 1) is far
more sensitive in log-probability than the others and dominates DDPO's gradient, while an image's
count and layout are decided at high noise. Measured here on the shipped pipeline with a fresh LoRA
(DDPO's starting point), batches drawn as the demo's DDPO draws them (configs/shapes/ddpo.yaml: a
training prompt per image, 20 steps, eta 1, guidance 5), advantages normalised over each batch of
learned rewards: the norm of the gradient of -mean(advantage x log p(x_{t-1} | x_t)) with respect to
the LoRA weights at each step (PPO's loss at ratio 1), averaged over batches, and its share.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from align.config import load_config
from align.finetune.config import FinetuneConfig
from align.finetune.ddim_logprob import ddim_step_with_logprob, decode, guided_eps, sample_with_logprob
from align.finetune.draws import draw_seed, prompt_of
from align.finetune.rewards import make_reward_fn
from align.finetune.training_run import PromptEmbeddings, load_models, make_accelerator
from align.generation.prompts import load_prompts

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", required=True, help="reward model directory, e.g. runs/demo/reward-r1")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)

    config = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml", [f"reward.path={args.reward}"])
    s = config.sampling
    accelerator = make_accelerator(config, Path(tempfile.mkdtemp()), 1)
    pipeline, params = load_models(config, accelerator)
    reward_fn = make_reward_fn(config.reward, accelerator.device)
    embed, unet, scheduler = PromptEmbeddings(pipeline), pipeline.unet, pipeline.scheduler
    scheduler.set_timesteps(s.steps)
    prompts = [p.text for p in load_prompts(config.prompts)]
    size = unet.config.sample_size
    norms = torch.zeros(s.steps)
    for b in range(args.batches):
        index = [b * args.batch_size + i for i in range(args.batch_size)]
        batch = [prompt_of(prompts, config.seed, 0, i, 0) for i in index]
        embeds, negative = embed(batch), embed([""]).expand(len(batch), -1, -1)
        with torch.no_grad():
            latents, _, timesteps = sample_with_logprob(unet, scheduler, embeds, negative, s.guidance, s.eta,
                                                        [torch.Generator().manual_seed(draw_seed(config.seed, 0, i)) for i in index],
                                                        (unet.config.in_channels, size, size))
            rewards = reward_fn(decode(pipeline.vae, latents[:, -1]), batch, [{}] * len(batch)).float()
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
        for j, t in enumerate(timesteps):
            eps = guided_eps(unet, latents[:, j], t, embeds, negative, s.guidance)
            step = ddim_step_with_logprob(scheduler, eps.float(), t, latents[:, j], s.eta, prev_sample=latents[:, j + 1])
            grads = torch.autograd.grad(-(advantages * step.log_prob).mean(), params)
            norms[j] += torch.sqrt(sum((g.float() ** 2).sum() for g in grads)) / args.batches
        print(f"batch {b + 1}/{args.batches} done", file=sys.stderr, flush=True)
    print("| step | t | gradient norm | share |\n|---|---|---|---|")
    for j, t in enumerate(timesteps):
        print(f"| {j + 1} | {int(t)} | {norms[j]:.3g} | {norms[j] / norms.sum():.1%} |")


if __name__ == "__main__":
    main()
