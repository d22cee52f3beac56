"""Which speed options pay off for DDPO's UNet calls on this CPU? Ratios against plain fp32, one process.

    python bench/unet_cpu_speed.py [--repeats 20]

DDPO spends nearly all of an epoch in two calls of the shipped tiny UNet (with its rank-4 LoRA on
the attention projections): the guided sampling step (no gradient, 16 prompts x 2 branches of
classifier-free guidance) and PPO's step (the same batch, forward and backward into the LoRA).
Each option is timed on both, interleaved round by round with the plain path so that the
machine's drift hits all alike; the median of `--repeats` rounds is reported, with the largest
difference from the plain path's output (the price in precision).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from align.finetune.config import LoraSettings  # noqa: E402
from align.finetune.lora import add_lora  # noqa: E402
from align.models import load_pipeline  # noqa: E402

BATCH = 32  # 16 samples x 2 guidance branches


def options(unet):
    """name -> (model to call, autocast context factory)."""
    plain = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    compiled = torch.compile(unet)
    return {
        "plain fp32": (unet, plain),
        "bf16 autocast": (unet, bf16),
        "torch.compile": (compiled, plain),
        "torch.compile + bf16 autocast": (compiled, bf16),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    pipeline = load_pipeline("shapes-tiny-sd", device="cpu")
    unet = pipeline.unet
    params = add_lora(unet, LoraSettings())
    size = unet.config.sample_size
    latents = torch.randn(BATCH, unet.config.in_channels, size, size)
    t = torch.full((BATCH,), 500)
    ids = pipeline.tokenizer(["two red circles on a black background"] * BATCH, padding="max_length",
                             max_length=pipeline.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        text = pipeline.text_encoder(ids)[0]

    def sample(model, context):
        with torch.no_grad(), context():
            return model(latents, t, text).sample.float()

    def train(model, context):
        with context():
            out = model(latents, t, text).sample.float()
        out.square().mean().backward()
        grad = torch.cat([p.grad.flatten() for p in params])
        for p in params:
            p.grad = None
        return grad

    runs = options(unet)
    reference = {"sample": sample(unet, runs["plain fp32"][1]), "train": train(unet, runs["plain fp32"][1])}
    for model, context in runs.values():  # warm-up: compilation happens here
        sample(model, context), train(model, context)
    times = {(name, call): [] for name in runs for call in ("sample", "train")}
    error = {}
    for _ in range(args.repeats):
        for name, (model, context) in runs.items():
            for call, fn in (("sample", sample), ("train", train)):
                began = time.perf_counter()
                result = fn(model, context)
                times[name, call].append(time.perf_counter() - began)
                error[name, call] = float((result - reference[call]).abs().max() / reference[call].abs().max())
    print(f"tiny UNet + LoRA rank 4, batch {BATCH} at {size}x{size} latents, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} rounds")
    print(f"{'option':<32}{'sampling step':>16}{'speed-up':>10}{'rel. error':>12}{'PPO step':>12}{'speed-up':>10}{'rel. error':>12}")
    base = {call: statistics.median(times["plain fp32", call]) for call in ("sample", "train")}
    for name in runs:
        cells = []
        for call in ("sample", "train"):
            median = statistics.median(times[name, call])
            cells += [f"{median * 1000:>13.1f} ms", f"{base[call] / median:>9.2f}x", f"{error[name, call]:>12.1e}"]
        print(f"{name:<32}" + "".join(cells))


if __name__ == "__main__":
    main()
