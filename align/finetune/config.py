"""The `finetune` config: one dataclass tree for every method, with its invariants checked.

Batch sizes are per process, as in TRL's DDPOConfig and ddpo-pytorch: an epoch samples
`sampling.batch_size x processes x sampling.batches_per_epoch` trajectories, and one optimizer
step sees `train.batch_size x processes x train.accumulation` of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from align.config import Checked
from align.errors import BadInput


@dataclass
class RewardSettings(Checked):
    kind: Literal["learned", "oracle", "clip"] = "learned"  # learned: a reward_models RewardModel dir
    path: str | None = None  # the RewardModel directory (kind: learned)
    clip_model: str = "shapes-tiny-clip"  # CLIP score backbone (kind: clip)
    clip_pretrained: str | None = None


# Targets covering every layer type of a diffusers UNet: attention projections, ResNet convolutions,
# the transformer blocks' in / out projections and MLPs (what experiments/finetune_capacity.py compares).
ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
EVERY_LAYER_TYPE = [*ATTENTION, "conv1", "conv2", "conv_shortcut", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]


@dataclass
class LoraSettings(Checked):
    enabled: bool = True  # OUT/final holds LoRA weights; False: the full UNet is trained, OUT/final is a pipeline
    rank: int = field(default=4, metadata={"min": 1})
    alpha: float = field(default=4.0, metadata={"above": 0})
    targets: list[str] = field(default_factory=lambda: list(ATTENTION))


@dataclass
class SamplingSettings(Checked):
    steps: int = field(default=20, metadata={"min": 1})
    guidance: float = field(default=5.0, metadata={"min": 0})
    # DDPO needs eta > 0: the step must be a distribution to have a log-probability
    eta: float = field(default=1.0, metadata={"min": 0, "max": 1})
    batch_size: int = field(default=16, metadata={"min": 1})  # per process
    batches_per_epoch: int = field(default=2, metadata={"min": 1})
    group_size: int = 0  # DDPO: 0 draws a prompt per image; k draws k images of each prompt, compared within the group


@dataclass
class TrainSettings(Checked):
    batch_size: int = field(default=16, metadata={"min": 1})  # per process
    # minibatches per optimizer step (DDPO also accumulates over timesteps)
    accumulation: int = field(default=1, metadata={"min": 1})
    lr: float = field(default=3e-4, metadata={"above": 0})
    weight_decay: float = field(default=1e-4, metadata={"min": 0})
    max_grad_norm: float = field(default=1.0, metadata={"above": 0})
    # DDPO
    inner_epochs: int = field(default=1, metadata={"min": 1})
    clip_range: float = field(default=1e-4, metadata={"above": 0})
    adv_clip_max: float = field(default=5.0, metadata={"above": 0})
    timestep_fraction: float = field(default=1.0, metadata={"above": 0, "max": 1})  # of the steps from timestep_first to timestep_last
    # DDPO trains only the sampling steps first..last (1-based, 1 = the noisiest; 0 = the last step):
    # experiments/ddpo_timestep_gradients.py measured the last steps carrying most of the gradient.
    timestep_first: int = field(default=1, metadata={"min": 1})
    timestep_last: int = field(default=0, metadata={"min": 0})
    kl_coef: float = field(default=0.0, metadata={"min": 0})  # > 0: KL penalty towards the starting model (DPOK)
    stat_buffer: int = field(default=32, metadata={"min": 1})  # rewards remembered per prompt for advantage normalisation
    stat_min_count: int = field(default=16, metadata={"min": 1})  # fewer than this: normalise with the whole batch instead
    # RWR
    epochs_per_dataset: int = field(default=1, metadata={"min": 1})


@dataclass
class RwrSettings(Checked):
    source: Literal["generate", "labels"] = "generate"  # weights from the reward of fresh samples, or human labels
    labels: str | None = None  # labels.parquet from `t2i-align export` (source: labels)
    images_per_prompt: int = field(default=4, metadata={"min": 1})  # source: generate
    # source: generate. k > 0: every k epochs, fresh samples from the current model are scored and
    # replace the dataset (online RWR: expert iteration / RAFT); 0: one dataset from the starting model
    resample_every: int = field(default=0, metadata={"min": 0})
    # the weighted loss's timesteps (of the 1,000 training timesteps; 999 is pure noise), where the
    # count and layout are decided at the top: experiments/finetune_capacity.py
    min_timestep: int = field(default=0, metadata={"min": 0, "max": 999})
    max_timestep: int = field(default=999, metadata={"min": 0, "max": 999})
    # weight of the denoising loss on clean renders with true captions
    pretrain_beta: float = field(default=1.0, metadata={"min": 0})
    pretrain_batch_size: int = field(default=16, metadata={"min": 1})


@dataclass
class BackpropSettings(Checked):
    """Reward backpropagation: gradients through the last K sampling steps, K drawn per batch from
    [min_steps, max_steps] (AlignProp's randomised truncation; min = max = K is DRaFT-K)."""

    min_steps: int = field(default=1, metadata={"min": 1})
    max_steps: int = field(default=20, metadata={"min": 1})
    # weight of the denoising loss on clean renders (clean_data.py) against drift
    pretrain_beta: float = field(default=0.0, metadata={"min": 0})
    gradient_checkpointing: bool = False  # recompute UNet activations in the backward pass: memory for time (GPUs)


@dataclass
class EvalSettings(Checked):
    prompts: str = "heldout"  # the unseen split
    prompt_count: int = field(default=0, metadata={"min": 0})  # a fixed sample of this many of them, 0: all
    images_per_prompt: int = field(default=1, metadata={"min": 1})  # both splits
    seed: int = field(default=1000, metadata={"min": 0})  # unseen image i is drawn with seed + i
    seen_prompts: str | None = "train"  # the seen split (null: none): fine-tuning prompts with fresh seeds
    # a fixed sample of this many of them (the held-out set's size), 0: all
    seen_prompt_count: int = field(default=89, metadata={"min": 0})
    # far from every seed that fine-tuning, rating or the demo's runs use
    seen_seed: int = field(default=200_000, metadata={"min": 0})
    # The deployment sampler, as `generate` draws (configs/shapes/generate.yaml), whatever the training sampler.
    steps: int = field(default=20, metadata={"min": 1})
    guidance: float = field(default=5.0, metadata={"min": 0})
    eta: float = field(default=0.0, metadata={"min": 0, "max": 1})
    every: int = field(default=1, metadata={"min": 0})  # epochs; 0: only before and after training
    oracle: bool = True  # the shapes world's oracle; off for prompts outside it
    fidelity: bool = True  # Frechet distance to clean renders (shapes world only)
    clip_model: str = "shapes-tiny-clip"  # the embedding space of the fidelity measure
    grid_size: int = field(default=16, metadata={"min": 1})
    # alignment drop, below its best, that counts as reward hacking
    hacking_tolerance: float = field(default=0.05, metadata={"min": 0})


@dataclass
class FinetuneConfig(Checked):
    method: Literal["rwr", "ddpo", "reward_backprop"] = "ddpo"
    backend: Literal["t2i-align", "trl"] = "t2i-align"  # trl: DDPO through TRL 0.23's DDPOTrainer (align/finetune/ddpo_trl.py)
    model: str = "shapes-tiny-sd"
    prompts: str = "train"
    seed: int = field(default=0, metadata={"min": 0})
    epochs: int = field(default=10, metadata={"min": 1})
    save_every: int = field(default=1, metadata={"min": 0})  # epochs between checkpoints; 0: none
    keep_checkpoints: int = field(default=2, metadata={"min": 0})
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    # The method's control arm: the same samples, steps and regularisers with the feedback removed (RWR: every
    # sample weighs the dataset's mean weight; DDPO: zero advantages; reward backpropagation: the reward's
    # gradient off). A method's gain counts only beyond its control's.
    control: bool = False
    log_with: Literal["tensorboard", "wandb"] = "tensorboard"
    reward: RewardSettings = field(default_factory=RewardSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    rwr: RwrSettings = field(default_factory=RwrSettings)
    backprop: BackpropSettings = field(default_factory=BackpropSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def check(self, processes: int = 1) -> None:
        """Every invariant across keys, in one clear sentence each: when the config is built (one process),
        and again by the run once it knows its processes."""
        s, t = self.sampling, self.train  # single values are bounded where declared (align/config.py)
        if self.method == "ddpo":
            if s.eta <= 0:
                raise BadInput(f"DDPO needs sampling.eta > 0 to have per-step log-probabilities, got {s.eta}")
            if not 1 <= t.timestep_first <= (t.timestep_last or s.steps) <= s.steps:
                raise BadInput(f"train.timestep_first and train.timestep_last must satisfy 1 <= first <= last <= sampling.steps"
                               f" ({s.steps}; last 0 means the last step), got {t.timestep_first} and {t.timestep_last}")
            if s.batch_size % t.batch_size:
                raise BadInput(
                    f"sampling.batch_size ({s.batch_size}) must be divisible by train.batch_size ({t.batch_size})"
                )
            per_epoch = s.batch_size * processes * s.batches_per_epoch
            if s.group_size < 0 or s.group_size == 1 or (s.group_size and per_epoch % s.group_size):
                raise BadInput(
                    f"sampling.group_size must be 0 (no groups) or at least 2 and divide the {per_epoch} samples of an"
                    f" epoch (sampling.batch_size x processes x sampling.batches_per_epoch), got {s.group_size}"
                )
            per_step = t.batch_size * t.accumulation * processes
            if per_epoch % per_step:
                raise BadInput(
                    f"the {per_epoch} samples of an epoch (sampling.batch_size {s.batch_size} x {processes} processes x "
                    f"{s.batches_per_epoch} batches) must be divisible by train.batch_size {t.batch_size} x "
                    f"train.accumulation {t.accumulation} x {processes} processes = {per_step}"
                )
        if self.method == "reward_backprop":
            self._check_backprop()
        if self.backend == "trl":
            self._check_trl()
        if self.method == "rwr" and self.rwr.min_timestep > self.rwr.max_timestep:
            raise BadInput(f"rwr.min_timestep ({self.rwr.min_timestep}) must not be above rwr.max_timestep ({self.rwr.max_timestep})")
        if self.method == "rwr" and self.rwr.source == "labels" and self.rwr.resample_every:
            raise BadInput("rwr.resample_every draws fresh samples from the current model, which rated labels cannot"
                           " be; set rwr.resample_every=0 or rwr.source=generate")

    def require_inputs(self) -> None:
        """What a run reads besides the config: the reward model, the labels, shapes-world prompts for the
        pre-training term. Checked by `finetune` before anything is written; a default config names none,
        and a script may hand `train` a reward function of its own instead."""
        if self.method == "reward_backprop" and self.reward.kind != "learned":
            raise BadInput(f"reward backpropagation needs a differentiable reward, and reward.kind: {self.reward.kind} is not"
                           " one (the oracle parses pixels, CLIP score here goes through PIL); use reward.kind: learned")
        if self.reward.kind == "learned" and not self.reward.path and not (self.method == "rwr" and self.rwr.source == "labels"):
            raise BadInput("reward.kind: learned needs reward.path, a reward model directory from `t2i-align train-reward`")
        if self.method == "rwr" and self.rwr.source == "labels" and not self.rwr.labels:
            raise BadInput("rwr.source: labels needs rwr.labels, a labels.parquet from `t2i-align export`")
        key, beta = {"rwr": ("rwr.pretrain_beta", self.rwr.pretrain_beta),
                     "reward_backprop": ("backprop.pretrain_beta", self.backprop.pretrain_beta)}.get(self.method, ("", 0))
        if beta > 0:
            from align.finetune.clean_data import clean_prompts

            if not clean_prompts(self.prompts):
                raise BadInput(f"{key} {beta} adds the denoising loss on clean shapes-world renders of the prompts, but no"
                               f" prompt of {self.prompts} is a shapes-world prompt; set {key}=0")

    def _check_backprop(self) -> None:
        b = self.backprop
        if not 1 <= b.min_steps <= b.max_steps <= self.sampling.steps:
            raise BadInput(f"backprop.min_steps and backprop.max_steps must satisfy 1 <= min <= max <= sampling.steps"
                           f" ({self.sampling.steps}), got {b.min_steps} and {b.max_steps}")
        if self.sampling.batches_per_epoch % self.train.accumulation:  # a checkpoint must not cut an accumulated step
            raise BadInput(f"train.accumulation ({self.train.accumulation}) must divide sampling.batches_per_epoch"
                           f" ({self.sampling.batches_per_epoch}): an optimizer step ends within its epoch")

    def _check_trl(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        if self.method != "ddpo":
            raise BadInput("backend: trl runs DDPO only (TRL's DDPOTrainer); use method: ddpo or backend: t2i-align")
        if self.control:
            raise BadInput("backend: trl has no control arm; set control=false or use backend: t2i-align")
        if self.train.kl_coef:
            raise BadInput("backend: trl has no KL penalty; set train.kl_coef=0 or use backend: t2i-align")
        if self.sampling.group_size:
            raise BadInput("backend: trl draws one prompt per image; set sampling.group_size=0 or use backend: t2i-align")
        if (self.train.timestep_first, self.train.timestep_last) != (1, 0):
            raise BadInput("backend: trl trains a fraction of all steps; leave train.timestep_first and train.timestep_last"
                           " unset or use backend: t2i-align")
        if self.lora.enabled and (self.lora.rank, self.lora.alpha, sorted(self.lora.targets)) != (4, 4.0, sorted(LoraSettings().targets)):
            raise BadInput("backend: trl uses TRL's fixed LoRA (rank 4, alpha 4, to_q/to_k/to_v/to_out.0); set lora.rank=4 lora.alpha=4")
        try:
            trl = version("trl")
        except PackageNotFoundError:
            trl = None
        if not trl or not trl.startswith("0.23."):
            raise BadInput(f"backend: trl needs TRL 0.23 (found {trl or 'none'}): pip install 't2i-align[trl]'")

    def ddpo_step_range(self) -> range:
        """The sampling-step indices (0-based) DDPO may train."""
        last = self.train.timestep_last or self.sampling.steps
        return range(self.train.timestep_first - 1, last)

    def ddpo_train_timesteps(self) -> int:
        return max(1, int(len(self.ddpo_step_range()) * self.train.timestep_fraction))


# Keys that may differ between a run and its resumption: how long it runs and how often it saves.
RESUMABLE_CHANGES = ("epochs", "save_every", "keep_checkpoints")
