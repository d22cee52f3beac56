"""Evaluation of a run directory: oracle alignment per category and split, parseable fraction,
and mean CLIP score, into metrics.json; per-image verdicts and scores into scores.parquet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from align.config import Checked
from align.errors import BadInput
from align.generation.generate import GenerateConfig
from align.models import clip_backbone_config, pick_device
from align.rundir import read_samples
from align.shapes.oracle import judge
from align.shapes.prompts import CATEGORIES, parse_prompt

SCORES = "scores.parquet"
METRICS = "metrics.json"


@dataclass
class EvaluateConfig(Checked):
    clip_model: str = "shapes-tiny-clip"  # shipped name, open_clip model name, or local-dir:PATH
    clip_pretrained: str | None = None  # open_clip pretrained tag, e.g. openai
    oracle: bool = True  # judge with the shapes oracle (shapes world only)
    batch_size: int = field(default=64, metadata={"min": 1})
    device: str = "auto"
    generate: GenerateConfig = field(default_factory=GenerateConfig)  # used when evaluating a model


def load_images(run_dir: Path, samples: pd.DataFrame) -> list[Image.Image]:
    images = []
    for relative in samples["image_path"]:
        path = run_dir / relative
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except FileNotFoundError:
            raise BadInput(f"image {path} listed in samples.parquet is missing") from None
        except (UnidentifiedImageError, OSError):
            raise BadInput(f"image {path} is corrupt or not an image") from None
    return images


def score_run(run_dir: Path, config: EvaluateConfig, samples: pd.DataFrame | None = None, images=None) -> pd.DataFrame:
    """Per-image oracle verdicts (shapes prompts only) and CLIP scores; of the given samples and their
    loaded images when a caller already has them, else of the whole run."""
    from reward_models.backbones import ClipBackbone
    from reward_models.clip_score import clip_scores

    samples = read_samples(run_dir) if samples is None else samples
    if samples.empty:
        raise BadInput(f"run directory {run_dir} has no samples")
    images = load_images(run_dir, samples) if images is None else images
    scores = samples[["id", "prompt", "category", "split"]].copy()
    if config.oracle:
        verdicts = [
            judge(image, spec) if (spec := parse_prompt(prompt)) else None
            for image, prompt in tqdm(zip(images, samples["prompt"]), total=len(images), desc="oracle")
        ]
        scores["aligned"] = [v.aligned if v else None for v in verdicts]
        scores["parseable"] = [v.parseable if v else None for v in verdicts]
        for attribute in ("count", "shape", "color", "background"):
            scores[f"{attribute}_ok"] = [v.attributes[attribute] if v else None for v in verdicts]
    backbone = ClipBackbone(clip_backbone_config(config.clip_model, config.clip_pretrained), pick_device(config.device))
    scores["clip_score"] = clip_scores(backbone, images, list(samples["prompt"]), config.batch_size).cpu().numpy()
    return scores


def summarize(scores: pd.DataFrame) -> dict:
    """metrics.json's numbers from the per-image table."""
    metrics: dict = {
        "images": len(scores),
        "clip_score": {
            "mean": float(scores["clip_score"].mean()),
            "by_category": {c: float(g["clip_score"].mean()) for c, g in scores.groupby("category")},
        },
    }
    if "aligned" in scores:
        judged = scores[scores["aligned"].notna()]
        metrics["oracle"] = {
            "images": len(judged),
            "parseable": float(judged["parseable"].astype(bool).mean()) if len(judged) else None,
            "alignment": {
                split: _alignment(part)
                for split, part in [("all", judged)] + list(judged.groupby("split"))
            },
            "attribute_accuracy": {
                attribute: float(judged[f"{attribute}_ok"].dropna().astype(bool).mean())
                for attribute in ("count", "shape", "color", "background")
                if judged[f"{attribute}_ok"].notna().any()
            },
        }
    return metrics


def _alignment(part: pd.DataFrame) -> dict:
    aligned = part["aligned"].astype(bool)
    result = {"overall": float(aligned.mean()), "images": len(part)}
    for category in CATEGORIES:
        in_category = part["category"] == category
        if in_category.any():
            result[category] = float(aligned[in_category].mean())
    return result


def evaluate(run_dir: str | Path, config: EvaluateConfig, out: str | Path | None = None, overwrite: bool = False) -> dict:
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / METRICS
    for existing in (out, run_dir / SCORES):
        if existing.exists() and not overwrite:
            raise BadInput(f"{existing} already exists; pass --overwrite to replace it")
    scores = score_run(run_dir, config)
    metrics = {"run_dir": str(run_dir.resolve()), "clip_model": config.clip_model, **summarize(scores)}
    scores.to_parquet(run_dir / SCORES, index=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2))
    return metrics
