"""Does DDPO learn in the demo's budget when each image is compared with others of its prompt?

    python bench/ddpo_grouping.py [--out runs/bench-grouping] [--reward oracle|DIR] [--epochs 40]

Hypothesis: with a prompt per image (250 training prompts, 32 samples an epoch), DDPO's
per-prompt normalisation never engages, advantages mostly measure prompt difficulty, and the
model does not learn; grouped sampling (8 images of each of 4 prompts an epoch, advantages
within the group) makes it learn on the prompts it trains on. Each arm is a `t2i-align finetune`
run with the demo's DDPO settings (40 epochs x 32 samples, half the timesteps) and one change;
the final LoRAs and the shipped model then draw the same seen prompts (a fixed sample of 89
training prompts x 2, fresh seeds) and unseen prompts (the 89 held-out x 2), and `t2i-align
compare` pairs them with 95% intervals. The reward is the oracle by default: the upper bound, so
a failure here is the optimiser's, not the reward's. A rerun reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_DDPO = ["train.timestep_fraction=0.5", "eval.every=0", "eval.fidelity=false"]
ARMS = {
    "prompt-per-image": [],
    "groups-of-8": ["sampling.group_size=8"],
    "groups-of-8-lr-1e-3": ["sampling.group_size=8", "train.lr=1e-3"],
    "prompt-per-image-lr-3e-3": ["train.lr=3e-3"],
    "groups-of-8-lr-3e-3": ["sampling.group_size=8", "train.lr=3e-3"],
    "groups-of-8-lr-1e-2": ["sampling.group_size=8", "train.lr=1e-2"],
}
SEEN_SEED, UNSEEN_SEED = 300_000, 400_000  # fresh: no rating, fine-tuning or demo run uses them


def cli(*argv: str) -> None:
    print("$ t2i-align " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "align.cli", *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-grouping")
    parser.add_argument("--reward", default="oracle", help="oracle, or a reward model directory")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reward = ["reward.kind=oracle"] if args.reward == "oracle" else [f"reward.path={args.reward}"]
    seen = out / "seen_prompts.txt"
    if not seen.is_file():
        import random

        sys.path.insert(0, str(ROOT))
        from align.generation.prompts import load_prompts

        texts = sorted(random.Random(SEEN_SEED).sample([p.text for p in load_prompts("train")], 89))
        seen.write_text("\n".join(texts) + "\n")

    models = {"baseline": None}
    for arm, overrides in ARMS.items():
        run = out / arm
        if not (run / "metrics.json").is_file():
            cli("finetune", "--config", str(ROOT / "configs/shapes/ddpo.yaml"), "--out", str(run),
                *(["--resume"] if (run / "checkpoints").is_dir() else []), f"epochs={args.epochs}", *reward, *DEMO_DDPO, *overrides)
        models[arm] = run / "final"
    runs = []
    for name, lora in models.items():
        for split, prompts, seed in (("seen", str(seen), SEEN_SEED), ("unseen", "heldout", UNSEEN_SEED)):
            images = out / "images" / f"{name}-{split}"
            if not (images / "samples.parquet").is_file():
                cli("generate", "--out", str(images), "--resume", f"prompts={prompts}", "images_per_prompt=2",
                    f"seed={seed}", *([f"lora={lora}"] if lora else []))
            runs += ["--run", f"{name}={images}"]
    cli("compare", *runs, "--out", str(out / "compare.json"), "--overwrite")
    result = json.loads((out / "compare.json").read_text())
    print(f"\n{'arm':<22}{'seen: difference':>28}{'seen: gap closed':>28}{'unseen: difference':>28}")
    for arm in ARMS:
        versus = result["models"][arm]["versus_baseline"]
        cells = [versus["seen"]["by_category"]["overall"]["difference"], versus["seen"]["by_category"]["overall"]["gap_closed"],
                 versus["unseen"]["by_category"]["overall"]["difference"]]
        print(f"{arm:<22}" + "".join(f"{e['value']:>+10.1%} [{e['low']:+.1%}, {e['high']:+.1%}]" for e in cells))


if __name__ == "__main__":
    main()
