"""Does DDPO move a better-trained starting model more than the shipped one?

    python experiments/ddpo_better_trained.py [--demo runs/demo] [--start DIR] [--out runs/bench-ddpo-better-trained]

Hypothesis (from experiments/unet_pretraining.py: the shipped UNet is under-trained, 4,000 more steps
of its own pretraining gain +7.3 points seen): DDPO cannot move the shipped model because it is
still far from fitting its data, and the same DDPO (the demo's settings: steps 1-10, 40 epochs x
32 samples, the demo's round-1 reward; seeds 0 and 1) started from the UNet trained 4,000 steps further
gains more over *its* starting point than the demo's DDPO gains over the shipped model. The
better-trained model and its DDPO draw the demo's seen and unseen splits; `t2i-align compare`
pairs the DDPO with its own start. Run experiments/unet_pretraining.py first. About 5 minutes a seed here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from align.evaluation.paired_arms import compare_runs, demo_baseline_runs, demo_split_runs, finetune, print_versus_baseline

ROOT = Path(__file__).resolve().parent.parent

BETTER_TRAINED = ROOT / "runs/bench-unet-pretraining/+4000 steps, lr 1e-4/tiny-sd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "runs/demo", help="a finished `make demo` directory")
    parser.add_argument("--start", type=Path, default=BETTER_TRAINED, help="the starting pipeline directory")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-ddpo-better-trained")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="DDPO's seeds (sampling noise, prompt draws, LoRA start)")
    args = parser.parse_args()
    demo, out = args.demo, args.out
    settings = yaml.safe_load((demo / "demo.yaml").read_text())
    start = demo_split_runs(demo, out, "baseline", [f"model={args.start}"])
    tuned = []
    for seed in args.seeds:
        lora = finetune(out / f"ddpo_seed{seed}", "configs/shapes/ddpo.yaml", [f"model={args.start}", f"reward.path={demo / 'reward-r1'}",
                                                                             *settings["ddpo"], "eval.every=0", f"seed={seed}"])
        tuned += demo_split_runs(demo, out, f"ddpo_seed{seed}", [f"model={args.start}", f"lora={lora}"])
    result = compare_runs([*start, *tuned], out / "compare.json", f"reward_model={demo / 'reward-r1'}")
    print_versus_baseline(result, [f"ddpo_seed{seed}" for seed in args.seeds])
    start_named = [run.replace("baseline=", "start=") for run in start]  # the start itself against the shipped model
    print_versus_baseline(compare_runs([*demo_baseline_runs(demo), *start_named], out / "compare-start.json"), ["start"])


if __name__ == "__main__":
    main()
