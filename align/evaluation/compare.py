"""Models compared on the same prompts and seeds: every number with a 95% interval, every
fine-tuned model against the baseline image for image (align/evaluation/paired.py).

A model is one or more run directories (e.g. its images of the training prompts and of the
held-out ones); all models must hold exactly the same (prompt, seed) pairs. Results are split
by prompt split: **seen** (training prompts) and **unseen** (held-out prompts); prompts from
outside the shapes grammar form a "custom" split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from align.config import Checked
from align.errors import BadInput
from align.evaluation import paired
from align.evaluation.evaluate import METRICS, SCORES, EvaluateConfig, load_images, score_run
from align.rundir import read_samples
from align.shapes.prompts import CATEGORIES

SPLITS = {"train": "seen", "heldout": "unseen"}
ATTRIBUTES = ("count", "shape", "color", "background")


@dataclass
class CompareConfig(Checked):
    clip_model: str = "shapes-tiny-clip"  # shipped name, open_clip model name, or local-dir:PATH
    clip_pretrained: str | None = None
    oracle: bool = True  # judge alignment with the shapes oracle (shapes world only)
    fidelity: bool = True  # Frechet distance to clean renders of the same prompts (shapes world only)
    reward_model: str | None = None  # a reward model directory: mean learned reward per model
    batch_size: int = field(default=64, metadata={"min": 1})
    device: str = "auto"
    resamples: int = field(default=paired.RESAMPLES, metadata={"min": 100})  # bootstrap resamples per interval
    seed: int = field(default=0, metadata={"min": 0})  # of the bootstrap; the fidelity reference renders use seed 0 too


def compare(models: dict[str, list[Path]], config: CompareConfig) -> dict:
    """The comparison as a dict (compare.json); the first model is the baseline."""
    if len(models) < 2:
        raise BadInput("compare needs at least two models: a baseline and one to compare with it")
    draws = {name: _model_samples(name, runs) for name, runs in models.items()}
    baseline, *others = draws
    _check_same_draws(draws, baseline)
    rewards = _reward_model(config.reward_model) if config.reward_model else None  # bad input before any work
    tables = {name: _scored(samples, config) for name, samples in draws.items()}
    if rewards:
        for table in tables.values():
            table["reward"] = rewards(table)
    fidelity = {}
    result = {"baseline": baseline, "confidence": paired.CONFIDENCE, "resamples": config.resamples,
              "runs": {name: [str(r.resolve()) for r in runs] for name, runs in models.items()}, "models": {}}
    for name, table in tables.items():
        per_split = {}
        for split, part in table.groupby("split", sort=True):
            per_split[split] = _describe(part, config)
            if config.fidelity and config.oracle and split != "custom":
                if split not in fidelity:  # one reference per split: every model is measured against the same renders
                    fidelity[split] = _fidelity_meter(part, config)
                per_split[split]["fidelity_frechet"] = fidelity[split](part["image"].tolist())
        result["models"][name] = {"splits": per_split}
    for name in others:
        result["models"][name]["versus_baseline"] = _versus(tables[baseline], tables[name], config)
    return result


def write_comparison(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


def _model_samples(name: str, runs: list[Path]) -> pd.DataFrame:
    """One row per image of the model, sorted by (prompt, seed), with the run it comes from."""
    parts = []
    for run in runs:
        if not (run / "samples.parquet").is_file():
            raise BadInput(f"{run} (model {name}) is not a run directory: it has no samples.parquet")
        samples = read_samples(run)
        if samples.empty:
            raise BadInput(f"run directory {run} (model {name}) has no samples")
        parts.append(samples.assign(run=str(run)))
    table = pd.concat(parts, ignore_index=True)
    if table.duplicated(["prompt", "seed"]).any():
        raise BadInput(f"model {name} has the same prompt and seed twice; give each run of a model once")
    return table.sort_values(["prompt", "seed"], ignore_index=True)


def _scored(samples: pd.DataFrame, config: CompareConfig) -> pd.DataFrame:
    """The samples with their verdicts, CLIP scores and images, split named seen / unseen."""
    parts = []
    for run, part in samples.groupby("run", sort=False):
        images = load_images(Path(run), part)  # once: scoring reuses them
        scores = _scores(Path(run), part, images, config).drop(columns=["prompt", "category", "split"])
        part = part.merge(scores, on="id", validate="one_to_one").assign(image=images)
        parts.append(part)
    table = pd.concat(parts).sort_values(["prompt", "seed"], ignore_index=True)
    table["split"] = table["split"].map(lambda s: SPLITS.get(s, s))
    return table


def _scores(run: Path, samples: pd.DataFrame, images: list, config: CompareConfig) -> pd.DataFrame:
    """The run's scores.parquet when `evaluate` wrote it with the same CLIP model, else scored now."""
    metrics = run / METRICS
    if metrics.is_file() and (run / SCORES).is_file():
        cached = pd.read_parquet(run / SCORES)
        same_clip = json.loads(metrics.read_text()).get("clip_model") == config.clip_model
        if same_clip and set(cached["id"]) == set(samples["id"]) and ("aligned" in cached or not config.oracle):
            return cached
    evaluate_config = EvaluateConfig(clip_model=config.clip_model, clip_pretrained=config.clip_pretrained,
                                     oracle=config.oracle, batch_size=config.batch_size, device=config.device)
    return score_run(run, evaluate_config, samples, images)


def _check_same_draws(tables: dict[str, pd.DataFrame], baseline: str) -> None:
    expected = set(zip(tables[baseline]["prompt"], tables[baseline]["seed"]))
    for name, table in tables.items():
        draws = set(zip(table["prompt"], table["seed"]))
        if draws != expected:
            differ = len(draws ^ expected)
            raise BadInput(f"models {baseline} and {name} were drawn from different prompts or seeds ({differ} (prompt, seed)"
                           " pairs are in one but not the other); compare needs the same prompts and seeds")


def _estimate(values, part: pd.DataFrame, config: CompareConfig) -> dict:
    return paired.mean(values, part["prompt"], config.resamples, config.seed).to_dict()


def _describe(part: pd.DataFrame, config: CompareConfig) -> dict:
    """One model on one split: alignment per category, attributes, parseable share, CLIP score."""
    described: dict = {"images": len(part), "prompts": int(part["prompt"].nunique()),
                       "clip_score": _estimate(part["clip_score"], part, config)}
    if "reward" in part:
        described["reward_mean"] = _estimate(part["reward"], part, config)
    if config.oracle and "aligned" in part:
        judged = part[part["aligned"].notna()]
        described["alignment"] = {category: _estimate(group["aligned"].astype(float), group, config)
                                  for category, group in _by_category(judged)}
        stated = {a: judged[judged[f"{a}_ok"].notna()] for a in ATTRIBUTES}  # attributes the prompt names
        described["attribute_accuracy"] = {a: _estimate(part[f"{a}_ok"].astype(float), part, config)
                                           for a, part in stated.items() if len(part)}
        described["parseable"] = _estimate(judged["parseable"].astype(float), judged, config) if len(judged) else None
    return described


def _versus(base: pd.DataFrame, other: pd.DataFrame, config: CompareConfig) -> dict:
    """Paired differences (and share of the gap closed) per split; the tables share their row order."""
    versus = {}
    for split in sorted(base["split"].unique()):
        in_split = base["split"] == split
        versus[split] = {
            f"{score}_difference": paired.difference(base.loc[in_split, score], other.loc[in_split, score],
                                                     base.loc[in_split, "prompt"], config.resamples, config.seed).to_dict()
            for score in ("clip_score", "reward") if score in base
        }
        if config.oracle and "aligned" in base:
            versus[split] |= _alignment_versus(base[in_split], other[in_split], config)
    return versus


def _alignment_versus(base: pd.DataFrame, other: pd.DataFrame, config: CompareConfig) -> dict:
    judged = base["aligned"].notna() & other["aligned"].notna()
    b, o = base[judged], other[judged]
    by_category = {}
    for category, group in _by_category(b):
        before, after, prompts = group["aligned"].astype(float), o.loc[group.index, "aligned"].astype(float), group["prompt"]
        by_category[category] = {
            "difference": paired.difference(before, after, prompts, config.resamples, config.seed).to_dict(),
            "gap_closed": paired.gap_closed(before, after, prompts, config.resamples, config.seed).to_dict(),
        }
    changed = b["aligned"].astype(bool) != o["aligned"].astype(bool)
    return {"images": len(b), "changed_verdicts": int(changed.sum()), "by_category": by_category}


def _by_category(part: pd.DataFrame):
    yield "overall", part
    for category in CATEGORIES:
        group = part[part["category"] == category]
        if len(group):
            yield category, group


def _reward_model(path: str):
    from reward_models.reward_model import RewardModel

    model = RewardModel.from_pretrained(path)
    return lambda part: model(part["image"].tolist(), part["prompt"].tolist()).cpu().numpy()


def _fidelity_meter(part: pd.DataFrame, config: CompareConfig):
    from align.evaluation.fidelity import FidelityMeter
    from align.models import pick_device

    return FidelityMeter(config.clip_model, pick_device(config.device), part["prompt"].tolist(), config.seed)


def table(result: dict) -> str:
    """The comparison as plain text, one table per split: each model, then its paired difference."""
    lines, models = [], result["models"]
    for split in sorted(models[result["baseline"]]["splits"]):
        first = models[result["baseline"]]["splits"][split]
        categories = list(first.get("alignment", {}))
        scores = [s for s in ("clip_score", "reward_mean") if s in first]
        lines.append(f"\n{split} prompts: {first['images']} images of {first['prompts']} prompts per model; "
                     f"oracle alignment, [{result['confidence']:.0%} interval]")
        lines.append(f"{'model':<14}" + "".join(f"{c:>23}" for c in categories + scores))
        for name, model in models.items():
            described, versus = model["splits"][split], model.get("versus_baseline", {}).get(split)
            lines.append(f"{name:<14}" + "".join(f"{_interval(described['alignment'][c]):>23}" for c in categories)
                         + "".join(f"{_interval(described[s], percent=False):>23}" for s in scores))
            if versus:
                by_category = versus.get("by_category", {})
                cells = [_interval(by_category[c]["difference"], signed=True) if c in by_category else "-" for c in categories]
                cells += [_interval(versus[s.replace("_mean", "") + "_difference"], signed=True, percent=False) for s in scores]
                lines.append(f"{'  minus base':<14}" + "".join(f"{cell:>23}" for cell in cells))
                if "overall" in by_category:
                    lines.append(f"{'':<14}gap closed {_interval(by_category['overall']['gap_closed'], signed=True)}; "
                                 f"{versus['changed_verdicts']} of {versus['images']} verdicts changed")
    return "\n".join(lines)


def _number(value: float, signed: bool, percent: bool) -> str:
    return f"{value:{'+' if signed else ''}.{1 if percent else 2}{'%' if percent else 'f'}}"


def _interval(estimate: dict, signed: bool = False, percent: bool = True) -> str:
    value = _number(estimate["value"], signed, percent)
    if estimate["low"] is None:
        return value
    return f"{value} [{_number(estimate['low'], signed, percent)}, {_number(estimate['high'], signed, percent)}]"
