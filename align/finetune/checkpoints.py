"""Checkpoints of a fine-tuning run: accelerate's save_state plus the LoRA, stat buffer and counters.

    OUT/config.yaml                  the resolved config; a resume must match it
    OUT/checkpoints/epoch_0003/      after epoch 3: LoRA (or UNet), optimizer, RNG, custom state

A checkpoint is written to a temporary folder and renamed when complete, so an interrupted save
never replaces a good one; only the newest `keep` are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from align.config import save_config, to_dict
from align.errors import BadInput
from align.finetune.config import RESUMABLE_CHANGES, FinetuneConfig

CHECKPOINTS = "checkpoints"
CONFIG = "config.yaml"


def checkpoints(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS
    return sorted(folder.glob("epoch_[0-9][0-9][0-9][0-9]")) if folder.is_dir() else []


def latest(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def epoch_of(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("epoch_"))


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def prepare_output(out: Path, config: FinetuneConfig, resume: bool) -> Path | None:
    """Check OUT before any work: a new run needs an empty OUT; a resume needs OUT's own config.
    Returns the checkpoint to resume from, if any. Writes nothing when it refuses."""
    saved = out / CONFIG
    if resume:
        if not saved.is_file():
            raise BadInput(f"cannot resume {out}: it holds no fine-tuning run ({CONFIG} is missing)")
        previous = yaml.safe_load(saved.read_text()) or {}
        if _comparable(previous) != _comparable(to_dict(config)):
            changed = sorted(k for k in set(previous) | set(to_dict(config)) if k not in RESUMABLE_CHANGES
                             and previous.get(k) != to_dict(config).get(k))
            raise BadInput(f"cannot resume {out}: it was started with a different config (differs in {', '.join(changed)})")
        checkpoint = latest(out)
        if checkpoint is None:  # starting over would overwrite what the run wrote so far
            raise BadInput(f"cannot resume {out}: it has no checkpoint yet (it stopped before its first, or save_every"
                           " is 0); start the run again into a new --out")
        return checkpoint
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"output directory {out} already holds a run; pass --resume to continue it or choose another --out")
    return None


def write_config(out: Path, config: FinetuneConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG)


def save(accelerator, out: Path, epoch: int, keep: int) -> Path:
    """All processes call this (accelerate gathers state); the main process renames and prunes."""
    final = out / CHECKPOINTS / f"epoch_{epoch:04d}"
    partial = out / CHECKPOINTS / f".partial_epoch_{epoch:04d}"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        for old in checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def register_lora_hooks(accelerator, lora: bool) -> None:
    """With LoRA, a checkpoint holds the adapter only (megabytes, not the whole UNet)."""
    if not lora:
        return
    from align.finetune.lora import load_lora_into, save_lora

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for model in models:
                save_lora(accelerator.unwrap_model(model), output_dir)
        weights.clear()  # accelerate must not save the full UNet too

    def load_hook(models, input_dir):
        while models:
            load_lora_into(accelerator.unwrap_model(models.pop()), input_dir)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
