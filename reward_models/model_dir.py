"""Writing a trained reward model directory whole, or not at all.

    DIR/config.json, model.safetensors, metrics.json   RewardModel.save_pretrained
    DIR/without_aux/                                    the same model trained without the auxiliary task
    DIR/predictions.parquet                             held-out ratings: reward, CLIP score, labels
    DIR/splits.json                                     prompts per part (train, val, test)
    DIR/training_config.yaml                            the resolved training config
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import yaml

from reward_models.config import RewardConfig
from reward_models.training import TrainingResult

PREDICTIONS = "predictions.parquet"
SPLITS = "splits.json"
WITHOUT_AUX = "without_aux"
TRAINING_CONFIG = "training_config.yaml"


def write_reward_dir(result: TrainingResult, config: RewardConfig, out: Path) -> None:
    """Build the directory beside `out`, then swap it in, so a failure never leaves half a model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
    try:
        result.model.save_pretrained(staging)
        if result.without_aux is not None:
            result.without_aux.save_pretrained(staging / WITHOUT_AUX)
        result.predictions.to_parquet(staging / PREDICTIONS, index=False)
        (staging / SPLITS).write_text(json.dumps(result.splits, indent=2))
        (staging / TRAINING_CONFIG).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
