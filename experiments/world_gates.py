"""The world issue's gates: does a shapes world leave feedback something to fix, on a model that more
pretraining would not improve, and does feedback fix it?

    python experiments/world_gates.py --weights align/shapes/weights --out runs/world/gates   # all gates, ~31 min
    python experiments/world_gates.py --weights DIR --plateau-steps 0 --no-responsiveness     # headroom only, ~4 min
    python experiments/world_gates.py --weights DIR --plateau-steps 0 --rwr train.lr=1e-4     # a variant of the RWR arms, ~20 min

`--weights` is a folder the pretraining command wrote (tiny-sd/ and tiny-clip/). Its pipeline
draws a seen sample stratified by category (every training prompt of the count, colour and
background categories, and 50 combination prompts: 92 in all) and the 72 held-out prompts, 4
images each at fresh seeds; the oracle judges them and the folder's own tiny CLIP scores them. One line
per check, each with its 95% interval (a bootstrap over prompts, align/evaluation/paired.py):

  - baseline seen alignment between 35% and 65%, unseen below it;
  - the baseline fails in every category (count, colour, background, combination): under 90%;
  - best-of-4 with the oracle picking gains at least 15 points on seen prompts (the sampler still
    draws aligned images): a prompt counts as aligned when any of its 4 images is;
  - CLIP score's within-prompt ROC-AUC against the oracle on seen prompts, per category: reported,
    to compare with the exact-caption CLIP's 0.905;
  - for each of the caption model's confusions, the share of the seen gap in images that fail only
    on the confused attribute of a prompt naming the confused-to value: together, the most of the
    gap that undoing the confusions can close (reported).

Then the per-category table, the count table (alignment, count accuracy and the objects drawn by the
number of objects a seen prompt asks for: where the model's own skill ends), and two more gates:

  - plateau (`--plateau-steps N`, default 2,000): the UNet goes on pretraining N more steps with
    the recipe itself (align/shapes/pretrain.py: loss, warm-up then constant rate, EMA, the weights'
    own caption model), draws the same prompts and seeds, and the paired difference in seen
    alignment must stay under 2 points with its interval covering zero (OUT/plus-N/tiny-sd);
  - responsiveness: one round of RWR (configs/shapes/rwr.yaml) on the model's own samples, as many
    of each training prompt as the issue's 2,000 allow (10 of each of the 192 prompts), the oracle's
    0 / 1 verdict as weight, so fine-tuning on the images that are right, with the loose-caption
    clean-data term; the full UNet, 12 passes at lr 3e-4, the weighted loss at the high-noise
    timesteps 700 to 999 only. It must close at least 30% of the seen gap,
    the lower end of its interval above 15%, and its control, the same run with every sample
    weighed alike (control=true), gain less than a third of that (OUT/responsiveness/). Then the
    feedback arm paired with its control (what the feedback is worth, the round's own damage
    cancelled) and, for each arm, the images failing on a confusion alone, before and after.
    `--rwr KEY=VALUE ...` runs a variant of both arms instead (a LoRA run is drawn on the base
    pipeline), e.g. `lora.enabled=true` or `rwr.min_timestep=500`.

With `--curve WORK --curve-steps 6000,10000`, the pretraining run's own learning curve comes
first: the EMA weights of those UNet checkpoints (WORK/unet-checkpoints, one every 1,000 steps)
draw the same seen sample, and each line gives its alignment and the paired difference against
the weights'. With `--against OTHER-GATES`, seen alignment is paired with another world's weights,
whose gates drew the same prompts and seeds (a world change that keeps the prompts). With
`--seen-seed N`, every seen draw starts at seed N instead (folders and the gates file named after
it): a result chosen among variants on the gates' own seeds, checked on others.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image

from align.config import load_config, to_dict
from align.evaluation import paired
from align.evaluation.paired_arms import SEEN_SEED, UNSEEN_SEED, cli, shipped
from align.finetune.clean_data import pretraining_captions
from align.finetune.config import FinetuneConfig
from align.generation.prompts import load_prompts
from align.shapes.captions import CONFUSED_FIELD, CaptionModel
from align.shapes.oracle import parse_image
from align.shapes.pretrain import THREADS, UnetCheckpoints, save_with_unet, train_unet
from align.shapes.prompts import CATEGORIES, parse_prompt
from reward_models.metrics import within_prompt_roc_auc

ROOT = Path(__file__).resolve().parent.parent
IMAGES_PER_PROMPT = 4
SEEN_BAND = (0.35, 0.65)
CATEGORY_CEILING = 0.90
BEST_OF_GAIN = 0.15
COMBINATIONS_SEEN = 50
RESPONSIVE_GAP_CLOSED, RESPONSIVE_LOWER_END = 0.30, 0.15
GATE_SAMPLES = 2000  # the most own samples for the round
# 12 passes at lr 3e-4 (loose-v3's 8 at 1e-4 could not tell the arms apart, docs/research/world-confusions.md), the
# weighted loss at timesteps 700-999 only: below them the model's own samples teach it their detail and cost it its
# count (docs/research/world-responsiveness.md). The run's own evaluations are left out: the gates draw their own.
RESPONSIVENESS_RUN = ["reward.kind=oracle", "lora.enabled=false", "train.lr=3e-4", "epochs=12", "rwr.min_timestep=700",
                      "eval.every=0", "eval.fidelity=false", "eval.seen_prompts=null", "eval.prompt_count=1"]
EXACT_CAPTION_CLIP_AUC = 0.905  # the first world's tiny CLIP, seen prompts (docs/research/finetune-targets.md)


def drawn_and_judged(weights: Path, out: Path, split: str, pipeline: Path | None = None, seen_seed: int = SEEN_SEED
                     ) -> pd.DataFrame:
    """scores.parquet of the split drawn by the weights' pipeline (or `pipeline`, a pipeline directory or LoRA
    weights on the weights' pipeline, into out/NAME-split), judged by the oracle and the weights' CLIP. The
    seen split's seeds start at `seen_seed`, named in the folder when they are not the gates' own."""
    images = drawn_folder(out, split, pipeline, seen_seed)
    prompts, seed = (str(stratified_seen_prompts(out)), seen_seed) if split == "seen" else ("heldout", UNSEEN_SEED)
    if not (images / "metrics.json").is_file():
        if pipeline is None or not (pipeline / "model_index.json").is_file():
            model = [f"model={weights / 'tiny-sd'}", *([f"lora={pipeline}"] if pipeline else [])]
        else:
            model = [f"model={pipeline}"]
        cli("generate", "--out", str(images), "--resume", f"prompts={prompts}", f"images_per_prompt={IMAGES_PER_PROMPT}",
            f"seed={seed}", *model)
        cli("evaluate", "--run", str(images), "--overwrite", f"clip_model=local-dir:{weights / 'tiny-clip'}")
    return judged(images)


def drawn_folder(out: Path, split: str, pipeline: Path | None = None, seen_seed: int = SEEN_SEED) -> Path:
    """Where drawn_and_judged keeps a split's images: out/seen, out/NAME-seen, out/NAME-seen-seedN, ..."""
    name = split if pipeline is None else f"{pipeline.parent.name}-{split}"
    return out / (name + seed_suffix(seen_seed) if split == "seen" else name)


def seed_suffix(seen_seed: int) -> str:
    """What names draws and gates at seen seeds other than the gates' own: "" or "-seedN"."""
    return "" if seen_seed == SEEN_SEED else f"-seed{seen_seed}"


def judged(images: Path) -> pd.DataFrame:
    """The scores.parquet of a drawn and evaluated folder."""
    scores = pd.read_parquet(images / "scores.parquet")
    scores["aligned"] = scores["aligned"].fillna(False).astype(float)  # an image the oracle cannot parse is not aligned
    return scores


def objects_drawn(images: Path, scores: pd.DataFrame) -> pd.Series:
    """How many objects the oracle finds in each scored image (None: no background, so no objects either)."""
    paths = pd.read_parquet(images / "samples.parquet").set_index("id")["image_path"]
    parses = [parse_image(Image.open(images / paths[id_])) for id_ in scores["id"]]
    return pd.Series([len(parse.objects) if parse.background else None for parse in parses], index=scores.index)


def continued(weights: Path, out: Path, steps: int) -> Path:
    """The weights' pipeline with its UNet pretrained `steps` further by the recipe, on its own caption model."""
    pipeline_dir = out / f"plus-{steps}" / "tiny-sd"
    if (pipeline_dir / "model_index.json").is_file():
        return pipeline_dir
    torch.set_num_threads(THREADS)
    pipeline = StableDiffusionPipeline.from_pretrained(weights / "tiny-sd")
    unet = train_unet(out / f"plus-{steps}" / "work", steps, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer,
                      start=pipeline.unet, captions=pretraining_captions(str(weights / "tiny-sd")))
    save_with_unet(weights / "tiny-sd", unet, pipeline_dir)
    return pipeline_dir


def checkpoint_pipeline(weights: Path, out: Path, checkpoints: UnetCheckpoints, step: int) -> Path:
    """The weights' pipeline with the EMA UNet of the pretraining run's checkpoint after `step` steps."""
    pipeline_dir = out / f"step-{step:06d}" / "tiny-sd"
    if not (pipeline_dir / "model_index.json").is_file():
        config = UNet2DConditionModel.load_config(weights / "tiny-sd" / "unet")
        save_with_unet(weights / "tiny-sd", checkpoints.ema_unet(step, config), pipeline_dir)
    return pipeline_dir


def learning_curve(weights: Path, out: Path, work: Path, steps: list[int], seen: pd.DataFrame, seen_seed: int) -> list[str]:
    checkpoints = UnetCheckpoints(work / "unet-checkpoints")
    lines = []
    for step in steps:
        at = drawn_and_judged(weights, out, "seen", checkpoint_pipeline(weights, out, checkpoints, step), seen_seed)
        assert list(at["prompt"]) == list(seen["prompt"]), "the models must draw the same prompts and seeds"
        alignment = paired.mean(at["aligned"], at["prompt"])
        change = paired.difference(seen["aligned"], at["aligned"], seen["prompt"])
        lines.append(line(f"curve: seen alignment after {step} UNet steps", alignment,
                          f"shipped minus this: {-change.value:+.3f} [{-change.high:+.3f}, {-change.low:+.3f}]"))
    return lines


def fine_tuned(weights: Path, out: Path, arm: str, overrides: list[str]) -> Path:
    """The pipeline directory of one RWR arm on the weights' model (run, or completed, if needed)."""
    run = out / "responsiveness" / arm
    config, model = shipped("configs/shapes/rwr.yaml"), f"model={(weights / 'tiny-sd').resolve()}"
    if (run / "metrics.json").is_file():
        # a run is found by its name alone: one trained by another round under that name must not stand in for this one
        requested = to_dict(load_config(FinetuneConfig, config, [model, *overrides]))
        trained = yaml.safe_load((run / "config.yaml").read_text())
        if {**trained, "model": str(Path(trained["model"]).resolve())} != requested:
            raise SystemExit(f"{run} was trained with another config than this round's; move it away to run the round")
    else:
        cli("finetune", "--config", str(config), "--out", str(run),
            *(["--resume"] if (run / "checkpoints").is_dir() else []), model, *overrides)
    return run / "final"


def stratified_seen_prompts(out: Path) -> Path:
    """out/seen_prompts.txt: every training prompt of the small categories and a fixed sample of combinations,
    so that each category's alignment rests on more than a handful of prompts."""
    path = out / "seen_prompts.txt"
    if not path.is_file():
        train = load_prompts("train")
        combinations = sorted(p.text for p in train if p.category == "combination")
        chosen = [p.text for p in train if p.category != "combination"]
        chosen += random.Random(SEEN_SEED).sample(combinations, COMBINATIONS_SEEN)
        path.write_text("\n".join(sorted(chosen)) + "\n")
    return path


def auc_interval(part: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> paired.Estimate:
    """Within-prompt ROC-AUC of CLIP score against the oracle, with a percentile bootstrap over prompts."""
    groups = {prompt: g for prompt, g in part.groupby("prompt")}

    def auc(prompts) -> float | None:
        chosen = pd.concat([groups[p].assign(prompt=f"{p}#{i}") for i, p in enumerate(prompts)])
        return within_prompt_roc_auc(chosen["clip_score"].to_numpy(), chosen["aligned"].to_numpy(), chosen["prompt"].to_numpy())

    names = sorted(groups)
    value = auc(names)
    rng = random.Random(seed)
    draws = [a for a in (auc(rng.choices(names, k=len(names))) for _ in range(resamples)) if a is not None]
    if value is None or not draws:
        return paired.Estimate(float("nan"), None, None)
    low, high = np.percentile(draws, [2.5, 97.5])
    return paired.Estimate(value, float(low), float(high))


def line(name: str, estimate: paired.Estimate, verdict: str) -> str:
    interval = f"[{estimate.low:.3f}, {estimate.high:.3f}]" if estimate.low is not None else "[no interval]"
    return f"{name:<58} {estimate.value:7.3f} {interval:<18} {verdict}"


def confusion_failures(scores: pd.DataFrame, captions: CaptionModel) -> dict[str, int]:
    """For each of the caption model's confusions, the images whose prompt names the confused-to value and
    that fail on that attribute alone: the ones undoing the confusion can fix."""
    checks = ["count_ok", "shape_ok", "color_ok", "background_ok"]
    ok = scores[checks].astype("boolean").fillna(True).astype(bool)  # a check the prompt does not ask for passes
    parsed = scores["parseable"].astype("boolean").fillna(False).astype(bool)
    failures = {}
    for confusion in captions.confusions:
        field = CONFUSED_FIELD[confusion["attribute"]]
        names_it = scores["prompt"].map(lambda text: getattr(parse_prompt(text), field) == confusion["said"])
        only = names_it & parsed & ~ok[f"{field}_ok"] & ok.drop(columns=f"{field}_ok").all(axis=1)
        failures[f"{confusion['shown']} said {confusion['said']}"] = int(only.sum())
    return failures


def confusion_share(seen: pd.DataFrame, captions: CaptionModel) -> list[str]:
    """Each confusion's share of the seen gap in images it alone fails: together, the most of the gap that
    undoing the confusions can close (the rest is the model's own skill)."""
    failed = len(seen) - seen["aligned"].sum()
    failures = confusion_failures(seen, captions)
    lines = [line(f"confusion {name}: share of the seen gap", paired.Estimate(count / failed, None, None),
                  f"{count} images, reported") for name, count in failures.items()]
    total = sum(failures.values())
    lines.append(line("confusions together: the most undoing them closes", paired.Estimate(total / failed, None, None),
                      f"{total} of {int(failed)} failed images, reported"))
    return lines


def count_table(seen: pd.DataFrame, images: Path) -> list[str]:
    """Seen alignment, count accuracy and the objects drawn (in the folder `images`), by the number of objects
    the prompt asks for."""
    asked = seen["prompt"].map(lambda text: parse_prompt(text).count)
    count_right = seen["count_ok"].astype("boolean").fillna(False).astype(float)
    objects = objects_drawn(images, seen)
    drawn = sorted(int(n) for n in objects.dropna().unique())
    table = ["| objects asked | images | aligned | count right | " + " | ".join(f"drew {n}" for n in drawn) + " |",
             "|---|---|---|---|" + "---|" * len(drawn)]
    for n, part in seen.groupby(asked):
        tally = objects[part.index].value_counts()
        table.append(f"| {n} | {len(part)} | {part['aligned'].mean():.1%} | {count_right[part.index].mean():.1%} | "
                     + " | ".join(str(tally.get(k, 0)) for k in drawn) + " |")
    return table


def variant_suffix(overrides: list[str]) -> str:
    """What names a variant's runs and gates file: "" for the gate itself, "-train.lr_1e-4" for a variant."""
    return "".join(f"-{override.replace('=', '_')}" for override in overrides)


def responsiveness(weights: Path, out: Path, seen: pd.DataFrame, captions: CaptionModel, extra: list[str],
                   seen_seed: int = SEEN_SEED) -> list[str]:
    """The gate's lines: the share of the seen gap RWR with the oracle closes, and its control's, and the images
    failing on a confusion alone before and after each arm; `extra` overrides both arms' RWR settings (their runs
    are then named after them)."""
    closed, drawn, undone = {}, {}, []
    before = confusion_failures(seen, captions)
    run = [*RESPONSIVENESS_RUN, f"rwr.images_per_prompt={GATE_SAMPLES // len(load_prompts('train'))}", *extra]
    for arm, overrides in (("feedback", run), ("control", [*run, "control=true"])):
        after = drawn_and_judged(weights, out, "seen", fine_tuned(weights, out, arm + variant_suffix(extra), overrides), seen_seed)
        assert list(after["prompt"]) == list(seen["prompt"]), "the models must draw the same prompts and seeds"
        closed[arm], drawn[arm] = paired.gap_closed(seen["aligned"], after["aligned"], seen["prompt"]), after
        after_arm = confusion_failures(after, captions)
        undone.append(f"images failing on a confusion alone, before -> after the {arm} arm: "
                      + ", ".join(f"{name} {before[name]} -> {after_arm[name]}" for name in before))
    method, control = closed["feedback"], closed["control"]
    # what the feedback itself is worth: each arm's own damage cancels in the pair
    beyond = paired.difference(drawn["control"]["aligned"], drawn["feedback"]["aligned"], seen["prompt"])
    gap = 1 - seen["aligned"].mean()
    return [
        line("responsiveness: seen gap closed, oracle-weighted RWR (30%, low > 15%)", method,
             "pass" if method.value >= RESPONSIVE_GAP_CLOSED and method.low is not None and method.low > RESPONSIVE_LOWER_END
             else "FAIL"),
        line("responsiveness control: equal weights (under a third of that)", control,
             "pass" if method.value > 0 and control.value < method.value / 3 else "FAIL"),
        line("responsiveness: feedback arm minus control, seen, paired", beyond,
             f"{beyond.value / gap:.0%} of the gap, {beyond.low / gap:.0%} to {beyond.high / gap:.0%}"),
        *undone,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="a folder with tiny-sd/ and tiny-clip/")
    parser.add_argument("--out", type=Path, default=None, help="default: WEIGHTS-gates")
    parser.add_argument("--plateau-steps", type=int, default=2000, help="the plateau gate's more steps (0: not measured)")
    parser.add_argument("--no-responsiveness", action="store_true", help="leave the responsiveness gate out")
    parser.add_argument("--rwr", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of both responsiveness arms' RWR run, e.g. train.lr=1e-4 (a variant, not the gate)")
    parser.add_argument("--curve", type=Path, default=None, help="the pretraining run's --work folder: its learning curve")
    parser.add_argument("--curve-steps", default="", help="comma-separated checkpoint steps of the curve, e.g. 6000,10000")
    parser.add_argument("--against", type=Path, default=None,
                        help="another world's gates folder: seen alignment paired with its weights' on the same prompts and seeds")
    parser.add_argument("--seen-seed", type=int, default=SEEN_SEED,
                        help="the seen split's first seed: other seeds check a result chosen on the gates' own")
    args = parser.parse_args()
    out = args.out or args.weights.with_name(args.weights.name + "-gates")
    out.mkdir(parents=True, exist_ok=True)
    seen = drawn_and_judged(args.weights, out, "seen", seen_seed=args.seen_seed)
    unseen = drawn_and_judged(args.weights, out, "unseen")

    seen_alignment = paired.mean(seen["aligned"], seen["prompt"])
    unseen_alignment = paired.mean(unseen["aligned"], unseen["prompt"])
    per_prompt = seen.groupby("prompt")["aligned"].agg(["mean", "max"]).reset_index()
    best_of = paired.difference(per_prompt["mean"], per_prompt["max"], per_prompt["prompt"])
    curve_steps = [int(step) for step in args.curve_steps.split(",") if step]
    lines = learning_curve(args.weights, out, args.curve, curve_steps, seen, args.seen_seed) if args.curve else []
    lines += [
        line("baseline seen alignment (35% to 65%)", seen_alignment,
             "pass" if SEEN_BAND[0] <= seen_alignment.value <= SEEN_BAND[1] else "FAIL"),
        line("baseline unseen alignment (below seen)", unseen_alignment,
             "pass" if unseen_alignment.value < seen_alignment.value else "FAIL"),
        line(f"best-of-{IMAGES_PER_PROMPT} gain, oracle picking, seen (at least +15 points)", best_of,
             "pass" if best_of.value >= BEST_OF_GAIN else "FAIL"),
    ]
    table = ["| category | seen alignment | unseen alignment | CLIP within-prompt AUC, seen |", "|---|---|---|---|"]
    for category in CATEGORIES:
        mine = seen[seen["category"] == category]
        theirs = unseen[unseen["category"] == category]
        alignment = paired.mean(mine["aligned"], mine["prompt"])
        auc = auc_interval(mine)
        lines.append(line(f"seen {category} alignment (fails: under 90%)", alignment,
                          "pass" if alignment.value < CATEGORY_CEILING else "FAIL"))
        lines.append(line(f"CLIP within-prompt AUC, seen {category} (exact-caption CLIP 0.905 overall)", auc, "reported"))
        unseen_text = f"{theirs['aligned'].mean():.1%}" if len(theirs) else "no prompts"
        table.append(f"| {category} | {alignment.value:.1%} [{alignment.low:.1%}, {alignment.high:.1%}] | {unseen_text}"
                     f" | {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}] |")
    captions = pretraining_captions(str(args.weights / "tiny-sd"))
    lines += confusion_share(seen, captions)
    if args.against:
        theirs = judged(drawn_folder(args.against, "seen", seen_seed=args.seen_seed))
        assert list(theirs["prompt"]) == list(seen["prompt"]), "the two worlds must draw the same prompts and seeds"
        change = paired.difference(theirs["aligned"], seen["aligned"], seen["prompt"])
        lines.append(line(f"seen alignment minus {args.against.name}'s", change, "reported"))
    if args.plateau_steps:
        more = continued(args.weights, out, args.plateau_steps)
        after = drawn_and_judged(args.weights, out, "seen", more, args.seen_seed)
        assert list(after["prompt"]) == list(seen["prompt"]), "the two models must draw the same prompts and seeds"
        change = paired.difference(seen["aligned"], after["aligned"], seen["prompt"])
        flat = abs(change.value) < 0.02 and not change.excludes(0.0)
        lines.append(line(f"plateau: seen alignment after {args.plateau_steps} more steps (change < 2 points, covers 0)",
                          change, "pass" if flat else "FAIL"))
    if not args.no_responsiveness:
        lines += responsiveness(args.weights, out, seen, captions, args.rwr, args.seen_seed)
    overall_auc = auc_interval(seen)
    lines.append(line("CLIP within-prompt AUC, seen, all categories", overall_auc,
                      "clearly worse than 0.905" if overall_auc.high is not None and overall_auc.high < EXACT_CAPTION_CLIP_AUC
                      else "not clearly worse than 0.905"))
    tables = [*table, "", *count_table(seen, drawn_folder(out, "seen", seen_seed=args.seen_seed))]
    print("\n".join(["", *lines, "", *tables]))
    (out / f"gates{variant_suffix(args.rwr)}{seed_suffix(args.seen_seed)}.txt").write_text("\n".join([*lines, "", *tables]) + "\n")


if __name__ == "__main__":
    main()
