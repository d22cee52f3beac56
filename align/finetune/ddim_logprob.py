"""A DDIM step that is a Gaussian policy: its mean, its noise, and the log-probability of a step.

With eta > 0, DDIM (Song et al. 2021, eq. 12) draws x_{t-1} ~ N(mu(x_t, eps), sigma_t^2) with
sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)). DDPO treats each step as an
action, so it needs log N(x_{t-1}; mu, sigma_t^2) for the step that was taken, both while
sampling (old policy) and again during training (new policy, with gradients).

Timesteps may differ per sample (DDPO trains each sample on its own random timesteps), so `t`
is a tensor with one entry per batch row.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Step(NamedTuple):
    prev_sample: torch.Tensor
    log_prob: torch.Tensor  # per row, averaged over latent dimensions
    mean: torch.Tensor
    std: torch.Tensor


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def ddim_step_with_logprob(
    scheduler,
    eps: torch.Tensor,
    t: torch.Tensor,
    x_t: torch.Tensor,
    eta: float,
    prev_sample: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> Step:
    """x_{t-1}, log p(x_{t-1} | x_t), and the Gaussian's mean and std. Give `prev_sample` to score a step already taken,
    or `noise` (standard normal, shaped like x_t) to take one."""
    alphas = scheduler.alphas_cumprod.to(x_t.device)
    t = t.to(x_t.device).long().expand(x_t.shape[0])
    prev_t = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    a_t = _per_row(alphas[t], x_t)
    a_prev = _per_row(
        torch.where(prev_t >= 0, alphas[prev_t.clamp(min=0)], scheduler.final_alpha_cumprod.to(x_t.device)), x_t
    )
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance.sqrt()
    mean = a_prev.sqrt() * x0 + (1 - a_prev - std**2).sqrt() * eps
    if prev_sample is None:
        prev_sample = mean + std * noise
    log_prob = -((prev_sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - math.log(math.sqrt(2 * math.pi))
    return Step(prev_sample, log_prob.mean(dim=tuple(range(1, x_t.ndim))), mean, std)


def guided_eps(unet, latents, t, embeds, negative_embeds, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: one UNet call on [unconditional; conditional]."""
    both = torch.cat([latents, latents])
    timesteps = t.expand(latents.shape[0])  # one timestep for the batch, or one per row
    eps_uncond, eps_cond = unet(both, torch.cat([timesteps, timesteps]), torch.cat([negative_embeds, embeds])).sample.chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)


@torch.no_grad()
def sample_with_logprob(unet, scheduler, embeds, negative_embeds, guidance, eta, generators, latent_shape):
    """A batch of DDIM trajectories: latents (B, T+1, ...), log-probs (B, T), timesteps (T).

    Every random draw of row i comes from generators[i], so a sample does not depend on which
    process or batch it was drawn in; that is what lets runs on 1 and N processes agree.
    """
    device = embeds.device

    def normal():
        return torch.stack([torch.randn(latent_shape, generator=g) for g in generators]).to(device, embeds.dtype)

    latents = normal() * scheduler.init_noise_sigma
    trajectory, log_probs = [latents], []
    for t in scheduler.timesteps:
        eps = guided_eps(unet, latents, t.to(device), embeds, negative_embeds, guidance)
        step = ddim_step_with_logprob(scheduler, eps, t.reshape(1), latents, eta, noise=normal())
        latents = step.prev_sample
        trajectory.append(latents)
        log_probs.append(step.log_prob)
    return torch.stack(trajectory, dim=1), torch.stack(log_probs, dim=1), scheduler.timesteps.clone()


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents to images in [0, 1], NCHW float32."""
    images = vae.decode(latents / vae.config.scaling_factor).sample
    return ((images.float() + 1) / 2).clamp(0, 1)
