"""The evaluation protocol of the fine-tuning experiments (experiments/): paired arms on both splits.

Run each arm with `t2i-align finetune`, draw the same seen and unseen prompts with every final
model and the shipped one, and pair them with `t2i-align compare`; every stage is the CLI, run as
a subprocess, so an experiment reruns exactly what a user would.

Seen: a fixed sample of 89 training prompts x 2, unseen: the 72 held-out prompts x 2, both with
fresh seeds no rating, fine-tuning or demo run uses. A rerun reuses finished runs and images.
The DDPO experiments that run after `make demo` draw the demo's own splits instead (demo_split_runs),
to be paired with the demo's baseline images. `Splits` draws either at a given guidance scale.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

SEEN_SEED, UNSEEN_SEED = 300_000, 400_000


def shipped(relative: str) -> Path:
    """A file shipped in the align package, e.g. configs/shapes/ddpo.yaml (configs/ at the repository
    root links to align/configs/), found however the project was installed."""
    return Path(str(resources.files("align") / relative))


# The guidance scale `t2i-align generate` draws with on the shapes world.
DEPLOYED_GUIDANCE = float(yaml.safe_load(shipped("configs/shapes/generate.yaml").read_text())["sampling"]["guidance"])


def cli(*argv: str) -> None:
    print("$ t2i-align " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "align.cli", *argv], check=True)


def finetune(run: Path, config: str, overrides: list[str]) -> Path:
    """The arm's final LoRA, training it (or completing it) if needed. `config`: a shipped config,
    e.g. configs/shapes/ddpo.yaml."""
    if not (run / "metrics.json").is_file():
        cli("finetune", "--config", str(shipped(config)), "--out", str(run),
            *(["--resume"] if (run / "checkpoints").is_dir() else []), *overrides)
    return run / "final"


def compare(out: Path, models: dict[str, Path | None], sampler: tuple[str, ...] = ()) -> dict:
    """compare.json of every model against the first, on both splits. A model is None (the shipped
    pipeline), a LoRA directory, or a full pipeline directory (a run with lora.enabled=false).
    `sampler`: `generate` overrides (e.g. sampling.guidance=1.0) for every model, kept in their own folder."""
    seen = seen_prompts_file(out)
    runs = []
    suffix = "".join(f"-{o}" for o in sampler)
    for name, lora in models.items():
        runs += sweep_split_runs(out / f"images{suffix}", seen, name, [*(_model_overrides(lora) if lora else []), *sampler])
    return compare_runs(runs, out / f"compare{suffix}.json")


def seen_prompts_file(folder: Path) -> Path:
    """folder/seen_prompts.txt, the sweeps' seen sample, written if missing."""
    seen = folder / "seen_prompts.txt"
    if not seen.is_file():
        seen.write_text("\n".join(seen_sample()) + "\n")
    return seen


def sweep_split_runs(folder: Path, seen: Path, name: str, model: list[str]) -> list[str]:
    """Draw the sweeps' seen split (the prompts of `seen` x 2 at SEEN_SEED) and unseen split (held-out
    prompts x 2 at UNSEEN_SEED) with `model` (`generate` overrides) into folder/NAME-SPLIT, unless
    drawn already; their `compare` arguments."""
    runs = []
    for split, prompts, seed in (("seen", str(seen), SEEN_SEED), ("unseen", "heldout", UNSEEN_SEED)):
        images = folder / f"{name}-{split}"
        if not (images / "samples.parquet").is_file():
            cli("generate", "--out", str(images), "--resume", f"prompts={prompts}", "images_per_prompt=2",
                f"seed={seed}", *model)
        runs += ["--run", f"{name}={images}"]
    return runs


def seen_sample() -> list[str]:
    """The fixed sample of 89 training prompts every sweep draws as its seen split."""
    from align.generation.prompts import load_prompts

    return sorted(random.Random(SEEN_SEED).sample([p.text for p in load_prompts("train")], 89))


def compare_runs(runs: list[str], report: Path, *options: str) -> dict:
    """`t2i-align compare` of these `--run` arguments (the first model is the baseline) into `report`, read back."""
    cli("compare", *runs, "--out", str(report), "--overwrite", *options)
    return json.loads(report.read_text())


def run_arms(out: Path, config: str, arms: dict[str, list[str]], common: list[str], chosen: list[str] | None = None,
             others: dict[str, Path] | None = None, sampler: tuple[str, ...] = ()) -> None:
    """Train the chosen arms (all by default; each `common` + its own overrides), compare them and
    `others` (already trained models) with the shipped pipeline, and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    models = {"baseline": None}
    for arm, overrides in arms.items():
        if not chosen or arm in chosen:
            models[arm] = finetune(out / arm, config, [*common, *overrides])
    models |= others or {}
    print_versus_baseline(compare(out, models, sampler), [m for m in models if m != "baseline"])


def demo_baseline_runs(demo: Path) -> list[str]:
    """`compare` arguments for the baseline of a finished `make demo`: its seen and unseen splits."""
    return ["--run", f"baseline={demo / 'eval/baseline-seen'}", "--run", f"baseline={demo / 'round1/heldout'}"]


def demo_split_runs(demo: Path, out: Path, name: str, model: list[str]) -> list[str]:
    """Draw the demo's seen split (training prompts at its seen seed) and unseen split (held-out
    prompts at its held-out seed) with `model` (`generate` overrides: lora=..., model=...), evaluate
    them, and return their `compare` arguments."""
    settings = yaml.safe_load((demo / "demo.yaml").read_text())
    runs = []
    for split, prompts, per_prompt, seed_key in (("seen", "train", "seen_images_per_prompt", "seen_seed"),
                                                ("unseen", "heldout", "heldout_images_per_prompt", "heldout_seed")):
        images = out / f"{name}-{split}"
        if not (images / "metrics.json").is_file():
            cli("generate", "--out", str(images), "--resume", f"prompts={prompts}", f"images_per_prompt={settings[per_prompt]}",
                f"seed={settings[seed_key]}", *model)
            cli("evaluate", "--run", str(images), "--overwrite")
        runs += ["--run", f"{name}={images}"]
    return runs


def _model_overrides(final: Path) -> list[str]:
    return [f"model={final}"] if (final / "model_index.json").is_file() else [f"lora={final}"]


def print_versus_baseline(result: dict, arms) -> None:
    print(f"\n{'arm':<30}{'seen: difference':>28}{'seen: gap closed':>28}{'unseen: difference':>28}")
    for arm in arms:
        versus = result["models"][arm]["versus_baseline"]
        cells = [versus["seen"]["by_category"]["overall"]["difference"], versus["seen"]["by_category"]["overall"]["gap_closed"],
                 versus["unseen"]["by_category"]["overall"]["difference"]]
        print(f"{arm:<30}" + "".join(f"{e['value']:>+10.1%} [{e['low']:+.1%}, {e['high']:+.1%}]" for e in cells))


class Splits:
    """Where a model's images of both splits are drawn: the sweeps' splits, or a demo's (`demo`)."""

    def __init__(self, out: Path, demo: Path | None):
        self.demo = demo
        self.folder = out / ("demo-splits" if demo else "sweep-splits")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seen_prompts = None if demo else seen_prompts_file(self.folder)

    def draw(self, scale: float, name: str = "", lora: Path | None = None) -> list[str]:
        """Both splits at this guidance scale, with the shipped pipeline or `lora`; their `compare` arguments."""
        label = self.label(scale, name if lora else "")
        model = [f"sampling.guidance={scale}", *([f"lora={lora}"] if lora else [])]
        if self.demo:
            return demo_split_runs(self.demo, self.folder, label, model)
        return sweep_split_runs(self.folder, self.seen_prompts, label, model)

    @staticmethod
    def label(scale: float, name: str = "") -> str:
        return f"{name + ' ' if name else ''}guidance {scale:g}"

    def seen_pixels(self, scale: float, name: str = "") -> np.ndarray:
        """The seen images in (prompt, seed) order, as floats in [0, 1]."""
        run = self.folder / f"{self.label(scale, name)}-seen"
        samples = pd.read_parquet(run / "samples.parquet").sort_values(["prompt", "seed"])
        return np.stack([np.asarray(Image.open(run / path), dtype=np.float32) / 255 for path in samples["image_path"]])
