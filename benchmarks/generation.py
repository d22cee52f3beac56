"""Generation throughput of the shipped tiny pipeline on this machine.

    .venv/bin/python benchmarks/generation.py [--images 64] [--steps 20]

Baseline, in the same process: the same images drawn one at a time (batch 1). Prints images
per second for batch 1 and for the batched run that `t2i-align generate` does, and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from align.models import load_pipeline


def images_per_second(pipeline, prompts: list[str], batch_size: int, steps: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i : i + batch_size]
        pipeline(
            batch,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=[torch.Generator().manual_seed(i + j) for j in range(len(batch))],
        )
    return len(prompts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    pipeline = load_pipeline("shapes-tiny-sd", device="cpu")
    prompts = ["two blue squares on a white background", "three circles", "a red diamond"] * args.images
    prompts = prompts[: args.images]
    images_per_second(pipeline, prompts[:4], 4, 2)  # warm-up
    single = images_per_second(pipeline, prompts, 1, args.steps)
    batched = images_per_second(pipeline, prompts, args.batch_size, args.steps)
    print(f"torch threads: {torch.get_num_threads()}, {args.images} images, {args.steps} DDIM steps, guidance 5")
    print(f"batch 1:  {single:7.2f} images/s (baseline)")
    print(f"batch {args.batch_size}: {batched:7.2f} images/s")
    print(f"ratio:    {batched / single:7.2f}x")


if __name__ == "__main__":
    main()
