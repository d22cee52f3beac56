"""`t2i-align generate`: prompts and a model to a run directory of images and samples.parquet."""

from align.cli import add_config_arguments, default_config

HELP = "generate images for a prompt set into a run directory (images/ + samples.parquet)"


def add_arguments(parser) -> None:
    add_config_arguments(parser, default_config("shapes/generate.yaml"))
    parser.add_argument("--out", required=True, help="run directory to create")
    parser.add_argument("--resume", action="store_true", help="complete an unfinished run with the same config")


def run(args) -> None:
    from align.config import load_config
    from align.generation.generate import GenerateConfig, generate

    config = load_config(GenerateConfig, args.config, args.overrides)
    out = generate(config, args.out, resume=args.resume)
    print(f"wrote {out}")
