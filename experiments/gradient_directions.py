"""Where do the measured gradients lead? One step along each mean gradient, and what it does to the images.

    python experiments/gradient_directions.py --reward runs/demo/reward-r1 [--gradients runs/bench-gradient-noise/gradients-24.npz]

Follows experiments/gradient_noise_scale.py, whose batch gradients it reads: reward backpropagation's
direction is resolved (noise scale about 180 samples, its mean over 192 samples well determined),
DDPO's is not. Hypothesis: a step along reward backpropagation's mean gradient raises the learned
reward *and* oracle alignment (the reward's gradient points towards alignment; what holds the
method back is then its step size or budget), while DDPO's mean gradient, mostly noise, moves
neither. The supervised denoising gradient is the third direction. Each direction d = -mean
gradient / root-mean-square gradient, weight by weight over the batches (the ratio Adam's update
tends to once its moments span many batches), scaled so that the LoRA weights move by eta in
root-mean-square, is added to the same fresh LoRA the gradients were taken at; every model draws
the same 89 training prompts x 2 with fixed noise and the deployment sampler (DDIM eta 0, 20
steps, guidance 5). Reported: the learned reward's mean and oracle alignment, each as a paired
difference from the unmoved LoRA with a 95% bootstrap interval over the 89 prompts. About 13 minutes here.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from align.config import load_config
from align.evaluation.gradients import consistency
from align.evaluation.paired_arms import SEEN_SEED, seen_sample
from align.finetune.config import FinetuneConfig
from align.finetune.rewards import make_reward_fn, oracle_reward
from align.finetune.training_run import load_models, make_accelerator

ROOT = Path(__file__).resolve().parent.parent

DIRECTIONS = ("reward backprop, learned reward", "DDPO, learned reward", "supervised denoising (pretraining)")
STEP_SIZES = (0.001, 0.003, 0.01)  # root-mean-square change of the LoRA weights: about 1, 3, 10 Adam steps at lr 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", required=True, help="reward model directory, e.g. runs/demo/reward-r1")
    parser.add_argument("--gradients", type=Path, default=ROOT / "runs/bench-gradient-noise/gradients-24.npz")
    args = parser.parse_args()
    torch.set_num_threads(2)
    gradients = np.load(args.gradients)
    # the LoRA the gradients were taken at: experiments/gradient_noise_scale.py's config and seed
    config = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml", [f"reward.path={args.reward}"])
    accelerator = make_accelerator(config, Path(tempfile.mkdtemp()), 1)
    pipeline, params = load_models(config, accelerator)
    pipeline.unet.eval()
    start = [p.detach().clone() for p in params]
    learned, oracle = make_reward_fn(config.reward, accelerator.device), oracle_reward()
    prompts = seen_sample() * 2  # the sweeps' seen split; SEEN_SEED also seeds the images' noise

    def draw() -> tuple[np.ndarray, np.ndarray]:
        rewards, aligned = [], []
        for i in range(0, len(prompts), 32):
            batch = prompts[i:i + 32]
            generators = [torch.Generator().manual_seed(SEEN_SEED + i + j) for j in range(len(batch))]
            with torch.no_grad():
                images = pipeline(batch, num_inference_steps=20, guidance_scale=5.0, eta=0.0, generator=generators, output_type="pt").images
            rewards.append(learned(images, batch, [{}] * len(batch)))
            aligned.append(oracle(images, batch, [{}] * len(batch)))
        return torch.cat(rewards).numpy(), torch.cat(aligned).numpy()

    base_reward, base_aligned = draw()
    print(f"unmoved LoRA: learned reward {base_reward.mean():+.2f}, oracle alignment {base_aligned.mean():.1%}", flush=True)
    print("\n| direction | step (RMS of the LoRA change) | learned reward: difference | oracle alignment: difference |\n|---|---|---|---|")
    for name in DIRECTIONS:
        batches = torch.from_numpy(gradients[name])
        direction = (-consistency(batches)).float()
        direction /= direction.pow(2).mean().sqrt()
        for eta in STEP_SIZES:
            offset = 0
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.copy_(p0 + eta * direction[offset:offset + p.numel()].view_as(p))
                    offset += p.numel()
            reward, aligned = draw()
            print(f"| {name} | {eta} | {paired(reward - base_reward, '+.2f')} | {paired(100 * (aligned - base_aligned), '+.1f')} |", flush=True)


def paired(differences: np.ndarray, spec: str) -> str:
    """Mean and 95% bootstrap interval of per-image differences, resampling prompts (both images of one together)."""
    per_prompt = differences.reshape(2, -1).mean(0)
    rng = np.random.default_rng(0)
    boot = [per_prompt[rng.integers(0, len(per_prompt), len(per_prompt))].mean() for _ in range(2000)]
    return f"{per_prompt.mean():{spec}} [{np.percentile(boot, 2.5):{spec}}, {np.percentile(boot, 97.5):{spec}}]"


if __name__ == "__main__":
    main()
