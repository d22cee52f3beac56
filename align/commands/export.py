"""`t2i-align export RUN_DIR... --out labels.parquet`: ratings of one or more runs as one table."""

from __future__ import annotations

import argparse

HELP = "export the ratings of one or more run directories to labels.parquet (one row per rating)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="rated run directories")
    parser.add_argument("--out", required=True, help="parquet file to write, e.g. labels.parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it is an existing regular file")


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from align.errors import BadInput
    from labeling_app.export import open_existing_store, write_labels

    out = Path(args.out)
    if os.path.lexists(out) and not args.overwrite:  # a link, even one pointing nowhere, is something there
        raise BadInput(f"{out} already exists; pass --overwrite to replace it")
    stores = [open_existing_store(run_dir) for run_dir in args.run_dirs]
    rows = write_labels(stores, out)
    for store in stores:
        store.close()
    print(f"wrote {rows} ratings from {len(stores)} run(s) to {out}")
    return 0
