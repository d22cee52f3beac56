"""`t2i-align train-reward`: a reward model from labels.parquet, measured on held-out prompts."""

from align.cli import add_config_arguments, default_config

HELP = "train a CLIP-based reward model on exported ratings (labels.parquet) into a model directory"


def add_arguments(parser) -> None:
    add_config_arguments(parser, default_config("shapes/reward.yaml"))
    parser.add_argument("--labels", required=True, help="labels.parquet from `t2i-align export`")
    parser.add_argument("--out", required=True, help="reward model directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing reward model directory")


def run(args) -> None:
    import json
    from pathlib import Path

    from align.config import load_config
    from align.errors import BadInput
    from align.models import SHIPPED, pick_device, resolve
    from reward_models.config import RewardConfig
    from reward_models.labels import read_labels
    from reward_models.model_dir import write_reward_dir
    from reward_models.training import train_reward_model

    config = load_config(RewardConfig, args.config, args.overrides)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise BadInput(f"reward model directory {out} already exists; pass --overwrite to replace it")
    if config.backbone.name in SHIPPED:
        resolve(config.backbone.name)  # missing shipped weights: one sentence now, not deep in training
    labels = read_labels(args.labels)
    perturb = None
    if config.world == "shapes":
        from align.shapes.oracle_labels import check_shapes_prompts, with_oracle_labels
        from align.shapes.perturb import perturbations

        check_shapes_prompts(labels, f"label file {args.labels}")
        labels, perturb = with_oracle_labels(labels), perturbations
    elif config.world != "none":
        raise BadInput(f"config key 'world' must be 'shapes' or 'none', got {config.world!r}")
    result = train_reward_model(labels, config, pick_device(config.device), perturb)
    write_reward_dir(result, config, out)
    print(json.dumps(headline(result.metrics), indent=2))


def headline(metrics: dict) -> dict:
    """The numbers a researcher looks at first: held-out ROC-AUC and accuracy, reward vs CLIP score."""
    summary = {}
    for truth, pair in metrics["heldout"].items():
        for scorer, values in pair.items():
            summary[f"{truth}/{scorer}"] = {"roc_auc": values["roc_auc"], "accuracy": values["accuracy"]}
    if "without_aux" in metrics:
        for truth, pair in metrics["without_aux"]["heldout"].items():
            summary[f"{truth}/reward_without_aux"] = {"roc_auc": pair["reward"]["roc_auc"], "accuracy": pair["reward"]["accuracy"]}
    summary["head_training_seconds"] = round(metrics["head_training_seconds"], 2)
    return summary
