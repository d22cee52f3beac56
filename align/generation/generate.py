"""Generation: prompts x seeds through a Stable Diffusion pipeline into a run directory.

Sample i of a run (prompt-major order, `images_per_prompt` per prompt) is drawn with its own
generator seeded `seed + i`, so its noise does not depend on batch size, and the same config
gives the same images from any model: baseline and fine-tuned runs are compared seed for seed.
The pixels are bit for bit the same only when drawn in the same batches: some CPUs round a
UNet pass differently for another batch size (oneDNN picks its kernels by shape).
With `best_of=N reward.path=DIR`, each sample is the best of N candidates by that reward
(generation/best_of.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml
from tqdm import tqdm

from align.config import Checked, save_config, to_dict
from align.errors import BadInput
from align.generation.best_of import CANDIDATE_FIELDS, CANDIDATES, KEPT_FIELDS, keep_best, plan_candidates
from align.generation.prompts import load_prompts
from align.models import load_pipeline, native_image_size, pick_device
from align.rundir import CONFIG, ensure_writable_dir, read_samples, write_samples
from reward_models.reward_model import RewardModel


@dataclass
class SamplingConfig(Checked):
    steps: int = field(default=20, metadata={"min": 1})
    guidance: float = field(default=5.0, metadata={"min": 0})
    eta: float = field(default=0.0, metadata={"min": 0, "max": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    # None: the model's native size (64 for shapes, 512 for SD v1.5)
    resolution: int | None = field(default=None, metadata={"min": 8})
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = "auto"


@dataclass
class RewardReference(Checked):
    path: str | None = None  # reward model directory from `t2i-align train-reward` (best_of > 1)


@dataclass
class GenerateConfig(Checked):
    model: str = "shapes-tiny-sd"  # shipped name, local pipeline directory, or hub id
    lora: str | None = None  # LoRA weights from `t2i-align finetune` (OUT/final), loaded on top of the model
    prompts: str = "train"  # named prompt set or text file
    images_per_prompt: int = field(default=1, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0})
    # draw this many candidates per image and keep the one the reward likes best
    best_of: int = field(default=1, metadata={"min": 1})
    reward: RewardReference = field(default_factory=RewardReference)
    # a finished run of the same model, LoRA and sampler: its images of the same prompt and seed are
    # copied instead of drawn again (best-of-n's candidate 0 is the plain run's image)
    reuse: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def check(self) -> None:
        """What single bounds (align/config.py) cannot say."""
        if self.best_of > 1 and not self.reward.path:
            raise BadInput(f"best_of={self.best_of} needs a reward model to pick with: add reward.path=DIR")
        if self.sampling.resolution is not None and self.sampling.resolution % 8:
            raise BadInput(f"sampling.resolution must be a multiple of 8, got {self.sampling.resolution}")


def plan_samples(config: GenerateConfig) -> list[dict]:
    """The rows of samples.parquet, before any image exists."""
    rows = []
    for prompt in load_prompts(config.prompts):
        for _ in range(config.images_per_prompt):
            index = len(rows)
            rows.append(
                {
                    "id": f"{index:06d}",
                    "prompt": prompt.text,
                    "category": prompt.category,
                    "split": prompt.split,
                    "seed": config.seed + index,
                    "model": config.model,
                    "guidance": config.sampling.guidance,
                    "steps": config.sampling.steps,
                    "image_path": f"images/{index:06d}.png",
                }
            )
    return rows


def prepare_run_dir(out: Path, config: GenerateConfig, resume: bool) -> None:
    """Refuse to touch an existing run unless resuming it with the very same config."""
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise BadInput(f"run directory {out} already exists; pass --resume to complete it or choose another --out")
        saved = out / CONFIG
        if not saved.is_file() or yaml.safe_load(saved.read_text()) != to_dict(config):
            raise BadInput(f"cannot resume {out}: it was generated with a different config")
    ensure_writable_dir(out / "images")
    save_config(config, out / CONFIG)


def generate(config: GenerateConfig, out: str | Path, resume: bool = False, pipeline=None) -> Path:
    """Fill `out` with images/ and samples.parquet; with resume, only missing images are drawn."""
    out = Path(out)
    rows = plan_samples(config)
    reward = None
    if config.best_of > 1:  # loaded before any image is drawn, so a bad directory fails at once
        reward = RewardModel.from_pretrained(config.reward.path, pick_device(config.sampling.device))
    reusable = reusable_images(config) if config.reuse else {}
    prepare_run_dir(out, config, resume)
    if reward is None:
        copy_reused(out, rows, reusable)
        draw(config, out, rows, pipeline)
        write_samples(out, rows)
        return out
    candidates = plan_candidates(rows, config.best_of)
    ensure_writable_dir(out / CANDIDATES / "images")
    copy_reused(out / CANDIDATES, candidates, reusable)
    draw(config, out / CANDIDATES, candidates, pipeline, passes=config.best_of)
    kept = keep_best(out, rows, candidates, reward)
    write_samples(out / CANDIDATES, candidates, CANDIDATE_FIELDS)
    write_samples(out, kept, KEPT_FIELDS)
    return out


def reusable_images(config: GenerateConfig) -> dict[tuple[str, int], Path]:
    """(prompt, seed) -> image of the run `config.reuse`, which must have drawn with the same model and sampler."""
    run = Path(config.reuse)
    saved = run / CONFIG
    if not saved.is_file():
        raise BadInput(f"reuse={run} is not a run directory of `t2i-align generate`: it has no {CONFIG}")
    theirs, mine = yaml.safe_load(saved.read_text()), to_dict(config)
    for key in ("model", "lora", "sampling"):
        if theirs.get(key) != mine[key]:
            raise BadInput(f"reuse={run} was drawn with another {key} than this run, so its images are not this run's")
    inside = run.resolve()
    return {(row.prompt, row.seed): run / row.image_path for row in read_samples(run).itertuples()
            if (run / row.image_path).resolve().is_relative_to(inside)}  # never a file from outside that run


def copy_reused(out: Path, rows: list[dict], reusable: dict[tuple[str, int], Path]) -> None:
    for row in rows:
        source, target = reusable.get((row["prompt"], row["seed"])), out / row["image_path"]
        if source is not None and source.is_file() and not target.is_file():
            partial = target.with_name(target.name + ".partial")  # whole or absent: --resume skips any existing file
            shutil.copyfile(source, partial)
            os.replace(partial, target)


def draw(config: GenerateConfig, out: Path, rows: list[dict], pipeline=None, passes: int = 1) -> None:
    """Draw the rows whose image file does not exist yet, each with its own seeded generator.

    With passes=n, pass k draws rows k, k+n, ...: best-of-n's candidate k of every request, so
    pass 0 is drawn in the plain run's batches and its images are the plain run's, bit for bit.
    """
    todo = [[row for row in rows[k::passes] if not (out / row["image_path"]).is_file()] for k in range(passes)]
    if not any(todo):
        return
    sampling = config.sampling
    pipeline = pipeline or load_pipeline(config.model, sampling.dtype, sampling.device, config.lora)
    size = sampling.resolution or native_image_size(pipeline)
    step = sampling.batch_size
    batches = [part[start : start + step] for part in todo for start in range(0, len(part), step)]
    with tqdm(total=sum(map(len, todo)), desc=f"generating {out.name}", unit="img") as progress:
        for batch in batches:
            generators = [torch.Generator(pipeline.device).manual_seed(row["seed"]) for row in batch]
            images = pipeline(
                [row["prompt"] for row in batch],
                num_inference_steps=sampling.steps,
                guidance_scale=sampling.guidance,
                eta=sampling.eta,
                height=size,
                width=size,
                generator=generators,
            ).images
            for row, image in zip(batch, images):
                image.save(out / row["image_path"])
            progress.update(len(batch))
