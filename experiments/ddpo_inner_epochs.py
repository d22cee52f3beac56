"""Is DDPO short of optimizer steps: do four PPO passes over each epoch's samples beat one?

    python experiments/ddpo_inner_epochs.py [--demo runs/demo] [--out runs/bench-inner-epochs]

Hypothesis (from experiments/unet_pretraining.py: the shipped model moves about 1.8 points of seen
alignment per 1,000 optimizer steps even on perfect data, and the demo's DDPO takes 80): the
demo's DDPO is limited by its optimizer steps, not its reward queries, so `train.inner_epochs=4`
(PPO's own lever: every epoch's samples trained four times, 320 optimizer steps on the same
1,280 queries, the same clip range) raises seen alignment beyond the demo's DDPO. Every other
setting is the demo's (`demo.yaml`'s `ddpo` overrides, round-1 reward, seed 0). The arm draws
the demo's seen and unseen splits; one `t2i-align compare` pairs it, and the demo's own DDPO,
with the demo's baseline. About 7 minutes of training here; a finished run is reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from align.evaluation.paired_arms import compare_runs, demo_baseline_runs, demo_split_runs, finetune, print_versus_baseline

ROOT = Path(__file__).resolve().parent.parent

ARMS = {"four_passes": ["train.inner_epochs=4"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "runs/demo", help="a finished `make demo` directory")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-inner-epochs")
    args = parser.parse_args()
    demo, out = args.demo, args.out
    settings = yaml.safe_load((demo / "demo.yaml").read_text())
    demo_ddpo = [f"--run=demo_ddpo={demo / 'eval/ddpo-seen'}", f"--run=demo_ddpo={demo / 'eval/ddpo-heldout'}"]
    arms = []
    for arm, overrides in ARMS.items():
        lora = finetune(out / arm, "configs/shapes/ddpo.yaml", [f"model={settings['model']}", f"reward.path={demo / 'reward-r1'}",
                                                               *settings["ddpo"], "eval.every=0", *overrides])
        history = json.loads((out / arm / "metrics.json").read_text())["history"]
        clipped = [h["train/clip_fraction"] for h in history if "train/clip_fraction" in h]
        print(f"{arm}: PPO clip fraction {sum(clipped) / len(clipped):.3f} on average over {len(clipped)} epochs")
        arms += demo_split_runs(demo, out, arm, [f"lora={lora}"])
    result = compare_runs([*demo_baseline_runs(demo), *demo_ddpo, *arms], out / "compare.json", f"reward_model={demo / 'reward-r1'}")
    print_versus_baseline(result, [m for m in result["models"] if m != "baseline"])
    against_demo_ddpo = [run.replace("demo_ddpo=", "baseline=") for run in demo_ddpo]  # the arms paired with the demo's DDPO itself
    print_versus_baseline(compare_runs([*against_demo_ddpo, *arms], out / "compare-vs-demo-ddpo.json"), list(ARMS))


if __name__ == "__main__":
    main()
