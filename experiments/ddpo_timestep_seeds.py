"""Does DDPO on the high-noise steps only beat the demo's DDPO beyond one seed?

    python experiments/ddpo_timestep_seeds.py [--demo runs/demo] [--out runs/bench-timestep-seeds] [--seeds 0 1 2]

Two arms, each at every seed (the run's `seed`: its sampling noise, prompt draws and LoRA start),
in the demo's budget against the demo's round-1 reward (40 epochs x 32 samples, 80 optimizer
steps, configs/shapes/ddpo.yaml otherwise): a random half of all 20 steps trained (the demo's DDPO
until this experiment) and `train.timestep_last=10 train.timestep_fraction=1.0` (steps 1-10, the
high-noise half, every one). Every final model draws the demo's seen split (training prompts x 2
at seed 200000) and unseen split (held-out prompts x 5 at seed 1000); one `t2i-align compare`
pairs them all with the demo's baseline. About 5 minutes an arm and seed here; finished runs are
reused.

Decision rule, fixed before the run: the demo switches to the high-noise steps if, averaged over
the seeds, they beat the demo's DDPO on both splits, and their seen difference from the baseline
is positive at every seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from align.evaluation.paired_arms import compare_runs, demo_baseline_runs, demo_split_runs, finetune, print_versus_baseline

ROOT = Path(__file__).resolve().parent.parent

BUDGET = ["epochs=40", "eval.every=0"]
ARMS = {"all_steps_half": ["train.timestep_fraction=0.5"],
        "high_noise_steps": ["train.timestep_last=10", "train.timestep_fraction=1.0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "runs/demo", help="a finished `make demo` directory")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-timestep-seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    demo, out = args.demo, args.out
    settings = yaml.safe_load((demo / "demo.yaml").read_text())
    runs = demo_baseline_runs(demo)
    for seed in args.seeds:
        for arm, overrides in ARMS.items():
            name = f"{arm}_seed{seed}"
            lora = finetune(out / name, "configs/shapes/ddpo.yaml",
                            [f"model={settings['model']}", f"reward.path={demo / 'reward-r1'}", *BUDGET, f"seed={seed}", *overrides])
            runs += demo_split_runs(demo, out, name, [f"lora={lora}"])
    result = compare_runs(runs, out / "compare.json", f"reward_model={demo / 'reward-r1'}")
    print_versus_baseline(result, [m for m in result["models"] if m != "baseline"])


if __name__ == "__main__":
    main()
