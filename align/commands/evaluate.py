"""`t2i-align evaluate`: oracle alignment, parseable fraction and CLIP score of a run or a model."""

from align.cli import add_config_arguments, default_config

HELP = "evaluate a run directory (or generate one from --model) into metrics.json"


def add_arguments(parser) -> None:
    add_config_arguments(parser, default_config("shapes/evaluate.yaml"))
    parser.add_argument("--run", required=True, help="run directory to evaluate (created first when --model is given)")
    parser.add_argument("--model", help="generate from this model first (shipped name, directory or hub id)")
    parser.add_argument("--prompts", help="prompt set for --model (default: the config's generate.prompts)")
    parser.add_argument("--out", help="metrics file (default: RUN/metrics.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing metrics file")


def run(args) -> None:
    import json

    from align.config import load_config
    from align.evaluation.evaluate import EvaluateConfig, evaluate
    from align.generation.generate import generate

    overrides = list(args.overrides)
    if args.model:
        overrides.append(f"generate.model={args.model}")
    if args.prompts:
        overrides.append(f"generate.prompts={args.prompts}")
    config = load_config(EvaluateConfig, args.config, overrides)
    if args.model:
        generate(config.generate, args.run)
    metrics = evaluate(args.run, config, args.out, args.overwrite)
    print(json.dumps({k: metrics[k] for k in ("oracle", "clip_score") if k in metrics}, indent=2))
