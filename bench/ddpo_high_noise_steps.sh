#!/bin/sh
# DDPO trained on the high-noise steps only (1-10 of 20) against the demo's DDPO (a random half of all
# steps), same budget, evaluated with the demo's seen and unseen seeds and compared against runs/demo.
#     bench/ddpo_high_noise_steps.sh [DEMO_DIR] [OUT]      (after `make demo`; about 8 minutes here)
set -e
DEMO=${1:-runs/demo}
OUT=${2:-runs/bench-timesteps}
T=.venv/bin/t2i-align
$T finetune --config configs/shapes/ddpo.yaml --out "$OUT/ddpo-high-noise" model=shapes-tiny-sd \
    reward.path="$DEMO/reward-r1" epochs=40 eval.every=10 train.timestep_last=10 train.timestep_fraction=1.0
LORA="$OUT/ddpo-high-noise/final"
$T generate --out "$OUT/seen" prompts=train images_per_prompt=2 seed=200000 lora="$LORA"
$T evaluate --run "$OUT/seen"
$T generate --out "$OUT/heldout" prompts=heldout images_per_prompt=5 seed=1000 lora="$LORA"
$T evaluate --run "$OUT/heldout"
$T compare --run baseline="$DEMO/eval/baseline-seen" --run baseline="$DEMO/round1/heldout" \
    --run ddpo="$DEMO/eval/ddpo-seen" --run ddpo="$DEMO/eval/ddpo-heldout" \
    --run ddpo_high_noise="$OUT/seen" --run ddpo_high_noise="$OUT/heldout" \
    --out "$OUT/compare.json" reward_model="$DEMO/reward-r1"
