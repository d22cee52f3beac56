"""The small parts of fine-tuning, each against an independent reference: the DDIM step against
diffusers' DDIMScheduler.step, its log-probability against torch.distributions, per-prompt
advantages, the Frechet distance, and the reward-hacking rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from align.cli import default_config
from align.evaluation.fidelity import frechet_distance
from align.finetune.ddim_logprob import ddim_step_with_logprob
from align.finetune.config import ATTENTION, EVERY_LAYER_TYPE
from align.finetune.monitor import reward_hacking
from align.finetune.stat_tracking import PerPromptStatTracker, group_advantages
from align.models import resolve


@pytest.fixture
def scheduler():
    scheduler = DDIMScheduler.from_pretrained(resolve("shapes-tiny-sd"), subfolder="scheduler")
    scheduler.set_timesteps(20)
    return scheduler


# first, middle and last step (final alpha) of the deployment sampler's 20 steps, and of a training
# sampler with half as many (denoising reduction: training samples with fewer steps than inference)
@pytest.mark.parametrize("steps, index", [(20, 0), (20, 10), (20, 19), (10, 0), (10, 5), (10, 9)])
def test_ddim_step_is_diffusers_step_with_its_log_probability(scheduler, steps, index):
    scheduler.set_timesteps(steps)
    torch.manual_seed(0)
    x_t, eps, noise = torch.randn(3, 2, 4, 16, 16)
    t = scheduler.timesteps[index]
    ours = ddim_step_with_logprob(scheduler, eps, t.reshape(1), x_t, eta=1.0, noise=noise)
    reference = scheduler.step(eps, t, x_t, eta=1.0, variance_noise=noise).prev_sample
    torch.testing.assert_close(ours.prev_sample, reference, rtol=1e-5, atol=1e-5)
    expected = torch.distributions.Normal(ours.mean, ours.std.expand_as(ours.mean)).log_prob(ours.prev_sample).mean(dim=(1, 2, 3))
    torch.testing.assert_close(ours.log_prob, expected, rtol=1e-5, atol=1e-5)
    # scoring the step taken gives the same log-probability; per-row timesteps give per-row results
    again = ddim_step_with_logprob(scheduler, eps, t.repeat(2), x_t, eta=1.0, prev_sample=ours.prev_sample)
    torch.testing.assert_close(again.log_prob, ours.log_prob)


def test_per_prompt_advantages_use_the_buffer_once_it_is_full():
    tracker = PerPromptStatTracker(buffer_size=4, min_count=2)
    first = tracker.update(["a", "a", "b", "b"], np.array([1.0, 3.0, 10.0, 30.0]))
    np.testing.assert_allclose(first, [-1, 1, -1, 1], atol=1e-5)  # each prompt on its own scale
    second = tracker.update(["a", "b"], np.array([2.0, 20.0]))
    np.testing.assert_allclose(second, [0, 0], atol=1e-5)  # means 2 and 20 from the buffers
    restored = PerPromptStatTracker(4, 2)
    restored.load_state_dict(tracker.state_dict())
    np.testing.assert_allclose(restored.update(["a"], np.array([5.0])), tracker.update(["a"], np.array([5.0])))


def test_small_buffers_fall_back_to_batch_statistics():
    tracker = PerPromptStatTracker(buffer_size=8, min_count=4)
    advantages = tracker.update(["a", "b"], np.array([0.0, 2.0]))
    np.testing.assert_allclose(advantages, [-1, 1], atol=1e-5)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = a + np.array([2.0, 0, 0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-3)
    # N(0, 1) vs N(0, 4) in one dimension: (1 - 2)^2 = 1
    assert frechet_distance(a[:, :1], 2 * rng.normal(size=(4000, 1))) == pytest.approx(1.0, rel=0.1)


def test_reward_rising_while_alignment_falls_is_reported():
    history = [
        {"epoch": 0, "eval/unseen/reward_mean": 0.1, "eval/unseen/oracle_alignment": 0.30},
        {"epoch": 2, "eval/unseen/reward_mean": 0.5, "eval/unseen/oracle_alignment": 0.45},
        {"epoch": 4, "eval/unseen/reward_mean": 0.9, "eval/unseen/oracle_alignment": 0.44},
    ]
    assert reward_hacking(history, tolerance=0.05) is None  # a small dip is noise
    history.append({"epoch": 6, "eval/unseen/reward_mean": 1.2, "eval/unseen/oracle_alignment": 0.20})
    message = reward_hacking(history, tolerance=0.05)
    assert message and "epoch 6" in message and "45.0%" in message and "20.0%" in message
    history.append({"epoch": 8, "eval/unseen/reward_mean": 0.3, "eval/unseen/oracle_alignment": 0.20})
    assert reward_hacking(history, tolerance=0.05) is None  # both falling is a bad run, not hacking


def test_monitor_draws_with_the_deployment_sampler_of_the_generate_configs():
    from align.config import load_config
    from align.finetune.config import FinetuneConfig
    from align.generation.generate import GenerateConfig

    for world in ("shapes", "sd15"):
        deployed = load_config(GenerateConfig, default_config(f"{world}/generate.yaml")).sampling
        for method in ("ddpo", "rwr", "reward_backprop"):
            monitored = load_config(FinetuneConfig, default_config(f"{world}/{method}.yaml")).eval
            assert (monitored.steps, monitored.guidance, monitored.eta) == (deployed.steps, deployed.guidance, deployed.eta)


def test_group_advantages_compare_each_image_with_its_own_group_only():
    rewards = np.array([1.0, 3.0, 1.0, 3.0,   # a hard prompt: two better, two worse
                        10.0, 10.0, 10.0, 10.0,  # all equal: no image is better, no gradient
                        0.0, 0.0, 0.0, 4.0])  # one image better than its three siblings
    advantages, flat = group_advantages(rewards, 4)
    assert flat == 1
    np.testing.assert_allclose(advantages[:4], [-1, 1, -1, 1])
    np.testing.assert_allclose(advantages[4:8], 0)
    np.testing.assert_allclose(advantages[8:], [-1 / np.sqrt(3)] * 3 + [np.sqrt(3)])
    # The prompts' difficulty does not leak in: shifting one group's rewards changes nothing.
    shifted, _ = group_advantages(rewards + np.repeat([100.0, 0.0, -5.0], 4), 4)
    np.testing.assert_allclose(shifted, advantages)


def test_rwr_weights_are_probabilities_not_rescaled_logits():
    from align.finetune.rwr import reward_weights

    logits = torch.tensor([-2.0, 0.0, 2.0, 12.0])  # one outlier no longer squeezes the rest together
    np.testing.assert_allclose(reward_weights(logits, "learned"), torch.sigmoid(logits))
    assert reward_weights(logits, "learned")[1] == 0.5
    np.testing.assert_allclose(reward_weights(torch.tensor([0.0, 1.0, 1.0]), "oracle"), [0, 1, 1])
    np.testing.assert_allclose(reward_weights(torch.tensor([70.0, 80.0, 90.0]), "clip"), [0, 0.5, 1])


def _random_lora(directory, targets):
    """A LoRA with every tensor random (lora_B is zero at init), saved as `finetune` saves it; its UNet."""
    from diffusers import StableDiffusionPipeline

    from align.finetune.config import LoraSettings
    from align.finetune.lora import add_lora, save_lora

    unet = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None).unet
    for p in add_lora(unet, LoraSettings(rank=4, alpha=4.0, targets=targets)):
        p.data.normal_(std=0.02, generator=torch.Generator().manual_seed(p.numel()))
    save_lora(unet, directory)
    return unet


@pytest.mark.parametrize("targets", [ATTENTION, EVERY_LAYER_TYPE])
def test_a_saved_lora_loads_every_trained_layer_with_load_lora_weights(tmp_path, targets):
    """Every LoRA tensor that was trained comes back, unchanged, through diffusers' own loader:
    with convolutions and MLPs among the targets, too (diffusers' key conversion once dropped the attention layers)."""
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    trained = _random_lora(tmp_path, targets)
    pipe = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None)
    pipe.load_lora_weights(str(tmp_path))
    want = get_peft_model_state_dict(trained)
    got = get_peft_model_state_dict(pipe.unet, adapter_name=next(iter(pipe.unet.peft_config)))
    assert sorted(got) == sorted(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_lora_fused_at_load_draws_what_the_unfused_adapter_draws(tmp_path):
    """load_pipeline fuses the LoRA into the weights (a speed-up): same images within 1/255 as
    diffusers' unfused adapter layers, and not the base model's."""
    from diffusers import StableDiffusionPipeline

    from align.models import load_pipeline

    _random_lora(tmp_path, EVERY_LAYER_TYPE)
    unfused = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None)
    base = lambda pipe: pipe(["a blue square", "three red circles"], num_inference_steps=3, output_type="np",  # noqa: E731
                             generator=[torch.Generator().manual_seed(i) for i in range(2)]).images
    plain = base(unfused)
    unfused.load_lora_weights(str(tmp_path))
    want, got = base(unfused), base(load_pipeline("shapes-tiny-sd", lora=str(tmp_path)))
    assert np.abs(got - want).max() <= 1 / 255
    assert np.abs(want - plain).max() > 10 / 255  # the LoRA matters, so the comparison can fail


def test_one_unet_call_for_several_batches_equals_one_call_each():
    """denoising_losses (RWR's weighted and clean batches together, a speed-up) gives the losses of
    separate denoising_loss calls with the same generator, within float rounding."""
    from diffusers import StableDiffusionPipeline

    from align.finetune.clean_data import denoising_loss, denoising_losses, training_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"), safety_checker=None)
    scheduler = training_scheduler(pipe)
    a, b = torch.randn(3, 4, 16, 16), torch.randn(2, 4, 16, 16)
    embeds = pipe.text_encoder(pipe.tokenizer(["a"] * 5, padding="max_length", return_tensors="pt").input_ids)[0]
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        separate = [denoising_loss(pipe.unet, scheduler, a, embeds[:3], g, range(500, 1000)),
                    denoising_loss(pipe.unet, scheduler, b, embeds[3:], g)]
        together = denoising_losses(pipe.unet, scheduler, [(a, embeds[:3], range(500, 1000)), (b, embeds[3:], None)],
                                    torch.Generator().manual_seed(0))
    for want, got in zip(separate, together):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_the_monitor_draws_a_fixed_sample_of_each_split_or_all_of_it():
    from align.config import load_config
    from align.finetune.config import FinetuneConfig
    from align.finetune.monitor import Monitor
    from align.generation.prompts import load_prompts

    def splits(*overrides: str) -> dict:
        config = load_config(FinetuneConfig, default_config("shapes/ddpo.yaml"), ["eval.fidelity=false", *overrides])
        return Monitor(config, None, None, None, "cpu").splits

    heldout = [p.text for p in load_prompts("heldout")]
    sampled = splits("eval.prompt_count=5", "eval.seen_prompt_count=7", "eval.images_per_prompt=2")
    unseen, seed = sampled["unseen"]
    assert seed == 1000 and len(unseen) == 10 and len(set(unseen)) == 5 and set(unseen) <= set(heldout)
    assert len(set(sampled["seen"][0])) == 7
    assert splits("eval.prompt_count=5")["unseen"][0] == sorted(set(unseen))  # the same sample every run
    assert splits()["unseen"][0] == heldout  # 0: the whole held-out set, in its order
