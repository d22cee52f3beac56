"""`t2i-align simulate-raters RUN_DIR --raters N --noise P`: oracle raters instead of people."""

from __future__ import annotations

import argparse

HELP = "rate a shapes-world run with N simulated raters (the oracle's verdict, flipped with probability P)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory written by `t2i-align generate`")
    parser.add_argument("--raters", type=int, default=1, help="number of simulated raters (default 1)")
    parser.add_argument("--noise", type=float, default=0.0, help="probability a rater flips the oracle's verdict")
    parser.add_argument(
        "--overlap", type=int, default=None, help="distinct raters per sample (default: as last set for this run, else 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the raters' noise")
    parser.add_argument("--name-prefix", default="sim", help="raters are named PREFIX-1 … PREFIX-N (default sim)")


def run(args: argparse.Namespace) -> int:
    from align.errors import BadInput
    from align.shapes.simulated_raters import simulate
    from labeling_app.store import open_run_store

    if args.raters < 1:
        raise BadInput(f"--raters must be at least 1, got {args.raters}")
    if not 0.0 <= args.noise <= 1.0:
        raise BadInput(f"--noise is a probability between 0 and 1, got {args.noise}")
    with open_run_store(args.run_dir, overlap=args.overlap) as store:
        counts = simulate(store, raters=args.raters, noise=args.noise, seed=args.seed, prefix=args.name_prefix)
    total = sum(counts.values())
    print(f"{total} simulated ratings by {len(counts)} raters written to {store.path} (noise {args.noise})")
    return 0
