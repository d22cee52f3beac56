"""The loop every fine-tuning method shares (`TrainingRun`): the Accelerator, the pipeline with a
trainable UNet (LoRA or full), cached prompt embeddings, the optimizer step, epoch bookkeeping with
its evaluations, checkpoints and resume, and the final LoRA / pipeline directory. A method file
keeps only what makes it that method: what it samples, scores and minimises.

    OUT/config.yaml   resolved config        OUT/logs/        tensorboard (or wandb)
    OUT/checkpoints/  resumable state        OUT/final/       LoRA weights or a pipeline directory
    OUT/train.log     the run log            OUT/grids/       image grids of fixed prompts and seeds
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from align.config import to_dict
from align.finetune import checkpoints
from align.finetune.config import FinetuneConfig
from align.finetune.monitor import Monitor, end_epoch, evaluate_and_record
from align.models import load_pipeline

FINAL = "final"
LOG = "train.log"


@dataclass
class Counters:
    """Step counters and per-epoch history, checkpointed with the model."""

    epoch: int = 0  # epochs completed
    optimizer_steps: int = 0
    queries: int = 0  # images the reward scored for training, all processes: the feedback budget spent
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "optimizer_steps": self.optimizer_steps, "queries": self.queries, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.optimizer_steps, self.history = state["epoch"], state["optimizer_steps"], state["history"]
        self.queries = state["queries"]


def make_accelerator(config: FinetuneConfig, out: Path, accumulation: int):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    return Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=accumulation,
        log_with=config.log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )


def run_logger(out: Path, accelerator) -> logging.Logger:
    """Messages of the main process to OUT/train.log and stderr."""
    logger = logging.getLogger(f"align.finetune.{out.resolve()}")
    logger.setLevel(logging.INFO if accelerator.is_main_process else logging.ERROR)
    logger.propagate = False  # accelerate configures the root logger too; one line per message is enough
    if accelerator.is_main_process and not logger.handlers:
        out.mkdir(parents=True, exist_ok=True)
        for handler in (logging.FileHandler(out / LOG), logging.StreamHandler()):
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
    return logger


def load_models(config: FinetuneConfig, accelerator):
    """The pipeline on the accelerator's device: VAE and text encoder frozen in the compute
    dtype; the UNet frozen with a float32 LoRA adapter, or fully trainable in float32."""
    from accelerate.utils import set_seed

    from align.finetune.lora import add_lora

    set_seed(config.seed)  # the LoRA initialisation is random: same seed, same run, on every rank
    compute_dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(accelerator.mixed_precision, "float32")
    dtypes = compute_dtype if config.lora.enabled else {"unet": "float32", "default": compute_dtype}
    pipeline = load_pipeline(config.model, dtypes, str(accelerator.device))
    pipeline.vae.requires_grad_(False)
    pipeline.text_encoder.requires_grad_(False)
    if config.lora.enabled:
        params = add_lora(pipeline.unet, config.lora)
    else:
        params = list(pipeline.unet.parameters())
    pipeline.unet.train()
    return pipeline, params


def make_optimizer(config: FinetuneConfig, params):
    return torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)


class PromptEmbeddings:
    """Text-encoder outputs per prompt, computed once: the text encoder is frozen."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            tokenizer = self.pipeline.tokenizer
            ids = tokenizer(missing, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(self.pipeline.device)
            for prompt, embedding in zip(missing, self.pipeline.text_encoder(ids)[0]):
                self.cache[prompt] = embedding
        return torch.stack([self.cache[p] for p in prompts])


def start(config: FinetuneConfig, out: Path, accelerator, resume_from: Path | None, state_objects: list) -> None:
    """Write the resolved config (new run) and load the newest checkpoint (resume)."""
    checkpoints.register_lora_hooks(accelerator, config.lora.enabled)
    for obj in state_objects:
        accelerator.register_for_checkpointing(obj)
    if accelerator.is_main_process and resume_from is None:
        checkpoints.write_config(out, config)
    accelerator.wait_for_everyone()
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
    if accelerator.is_main_process:
        accelerator.init_trackers("finetune", config=_flat(to_dict(config)))


def rank_weight_digests(accelerator, params) -> list[list[str]]:
    """Per process, a digest of each trainable tensor's bytes: equal tensor by tensor on all ranks, or the
    ranks diverged (a sum could hide a difference confined to one layer)."""
    import hashlib

    from accelerate.utils import gather_object

    digests = [hashlib.sha256(p.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16] for p in params]
    return gather_object([digests])


def save_final(config: FinetuneConfig, out: Path, accelerator, pipeline) -> Path:
    from align.finetune.lora import save_lora

    final = out / FINAL
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(pipeline.unet)
        if config.lora.enabled:
            save_lora(unet, final)
        else:
            pipeline.unet = unet
            pipeline.save_pretrained(final)
        checkpoints.write_config(final, config)
    accelerator.wait_for_everyone()
    return final


def checkpoint_if_due(config: FinetuneConfig, out: Path, accelerator, counters: Counters) -> None:
    """After an epoch: every `save_every` epochs and after the last one."""
    if config.save_every and (counters.epoch % config.save_every == 0 or counters.epoch == config.epochs):
        checkpoints.save(accelerator, out, counters.epoch, config.keep_checkpoints)


def finish(config: FinetuneConfig, out: Path, accelerator, pipeline, params, counters: Counters) -> dict:
    """Save final/, close the run, and return what `finetune` summarises."""
    save_final(config, out, accelerator, pipeline)
    digests = rank_weight_digests(accelerator, params)  # before end_training, which closes the process group
    accelerator.end_training()
    return {"history": counters.history, "optimizer_steps": counters.optimizer_steps,
            "processes": accelerator.num_processes, "rank_weight_digests": digests}


def _flat(tree: dict, prefix: str = "") -> dict:
    """Tensorboard hparams take scalars only."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


class TrainingRun:
    """One fine-tuning run, as every method drives it:

        run = TrainingRun(config, out, reward_fn, resume_from)
        for epoch in run.epochs():
            ...                                   # sample, score: the method's own work
            with run.accumulate():
                run.optimizer_step(loss)          # as often as the method has minibatches
            run.end_epoch(epoch, metrics)         # history, evaluation when due, checkpoint
        return run.finish()

    `accumulation`: minibatches per optimizer step (default train.accumulation); `state`: objects
    the method checkpoints besides the counters; `starting_model`: keep a frozen copy of the full UNet
    as it started (with LoRA the starting model is the UNet with its adapters off).
    """

    def __init__(self, config: FinetuneConfig, out: Path, reward_fn, resume_from: Path | None,
                 accumulation: int | None = None, state: tuple = (), starting_model: bool = False):
        self.config, self.out = config, out
        self.accelerator = make_accelerator(config, out, accumulation or config.train.accumulation)
        config.check(self.accelerator.num_processes)
        self.processes, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        self.log = run_logger(out, self.accelerator)
        self.pipeline, self.params = load_models(config, self.accelerator)
        self.frozen_start = None
        if starting_model and not config.lora.enabled:
            self.frozen_start = copy.deepcopy(self.pipeline.unet).requires_grad_(False).eval()
        self.unet, self.optimizer = self.accelerator.prepare(self.pipeline.unet, make_optimizer(config, self.params))
        self.counters = Counters()
        start(config, out, self.accelerator, resume_from, [self.counters, *state])
        main = self.accelerator.is_main_process
        self.monitor = Monitor(config, out, self.pipeline, reward_fn, self.accelerator.device) if main else None
        self.embed = PromptEmbeddings(self.pipeline)

    def epochs(self) -> range:
        """The epochs still to run; a new run first evaluates the starting model (epoch 0)."""
        if self.counters.epoch == 0 and not self.counters.history:
            evaluate_and_record(self.accelerator, self.monitor, self.counters, {"epoch": 0}, self.log, self.config)
        return range(self.counters.epoch, self.config.epochs)

    def accumulate(self):
        """Around a minibatch's forward and backward: gradients sync only when an optimizer step ends."""
        return self.accelerator.accumulate(self.unet)

    def optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward; at the end of an accumulation, clip the gradient norm. Inside `accumulate()`."""
        accelerator = self.accelerator
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(self.params, self.config.train.max_grad_norm)
        self.optimizer.step()  # accelerate's optimizer steps only when gradients were synced
        self.optimizer.zero_grad()
        self.counters.optimizer_steps += int(accelerator.sync_gradients)

    def starting_unet(self):
        """A context giving the UNet as it started: the frozen copy, or this UNet with its LoRA adapters off."""
        return _StartingModel(self.accelerator.unwrap_model(self.unet), self.frozen_start)

    def mean_over_processes(self, values: dict[str, list[float]]) -> dict[str, float]:
        """Each key's mean over this process's values, then over all processes."""
        device = self.accelerator.device
        return {key: float(self.accelerator.reduce(torch.tensor(np.mean(v), device=device), "mean")) for key, v in values.items()}

    def end_epoch(self, epoch: int, metrics: dict) -> None:
        """Record epoch `epoch` (0-based) as done: history and trackers, evaluation when due, checkpoint when due."""
        self.counters.epoch = epoch + 1
        end_epoch(self.accelerator, self.monitor, self.counters, {"epoch": epoch + 1, **metrics}, self.log, self.config)
        checkpoint_if_due(self.config, self.out, self.accelerator, self.counters)

    def finish(self) -> dict:
        return finish(self.config, self.out, self.accelerator, self.pipeline, self.params, self.counters)


class _StartingModel:
    def __init__(self, unet, frozen_start):
        self.unet, self.frozen_start = unet, frozen_start

    def __enter__(self):
        if self.frozen_start is not None:
            return self.frozen_start
        self.unet.disable_adapters()
        return self.unet

    def __exit__(self, *exc):
        if self.frozen_start is None:
            self.unet.enable_adapters()
