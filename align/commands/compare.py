"""`t2i-align compare`: models on the same prompts and seeds, with paired 95% intervals."""

from align.cli import add_config_arguments, default_config

HELP = "compare models drawn from the same prompts and seeds: alignment with 95% intervals, paired differences"


def add_arguments(parser) -> None:
    add_config_arguments(parser, default_config("shapes/compare.yaml"))
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a model's run directory; repeat it, the first NAME is the baseline; "
                             "a NAME given several times joins its runs (e.g. seen and unseen prompts)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args) -> None:
    from pathlib import Path

    from align.config import load_config
    from align.errors import BadInput
    from align.evaluation.compare import CompareConfig, compare, table, write_comparison

    models: dict[str, list[Path]] = {}
    for item in args.run:
        name, sep, run_dir = item.partition("=")
        if not sep or not name or not run_dir:
            raise BadInput(f"--run takes NAME=RUN_DIR, got '{item}'")
        models.setdefault(name, []).append(Path(run_dir))
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise BadInput(f"{out} already exists; pass --overwrite to replace it")
    config = load_config(CompareConfig, args.config, args.overrides)
    result = compare(models, config)
    write_comparison(result, out)
    print(table(result))
    print(f"\nwrote {out}")
