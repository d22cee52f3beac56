"""`t2i-align finetune`: RWR, DDPO or reward-backpropagation fine-tuning of a Stable Diffusion pipeline against a reward.

    t2i-align finetune --config configs/shapes/ddpo.yaml --out runs/ddpo reward.path=runs/reward
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m align.cli finetune --config ... --out ...
"""

from align.cli import add_config_arguments, default_config

HELP = "fine-tune a pipeline against a reward: reward-weighted likelihood (rwr), DDPO (ddpo) or reward backpropagation (reward_backprop)"


def add_arguments(parser) -> None:
    add_config_arguments(parser, default_config("shapes/ddpo.yaml"))
    parser.add_argument("--out", required=True, help="run directory: config, checkpoints, logs, final LoRA or pipeline")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")


def run(args) -> None:
    import json
    import time
    from pathlib import Path

    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from align.config import load_config
    from align.finetune import checkpoints
    from align.finetune.config import FinetuneConfig
    from align.finetune.rewards import make_reward_fn

    config = load_config(FinetuneConfig, args.config, args.overrides)
    # Without a GPU, processes started by torchrun (`accelerate launch --multi_gpu`) join a gloo group;
    # the Accelerator made later shares this state, so it must know about the CPU now.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    out = Path(args.out)
    # Everything that can refuse does so before anything is written.
    config.check(state.num_processes)
    config.require_inputs()
    if args.resume and config.backend == "trl":
        from align.errors import BadInput

        raise BadInput("backend: trl keeps no checkpoints to resume from; rerun into a new --out")
    resume_from = checkpoints.prepare_output(out, config, args.resume)
    if config.method == "rwr" and config.rwr.source == "labels":
        from align.finetune.rwr import read_labels

        read_labels(Path(config.rwr.labels), config.prompts)
    needs_reward = not (config.method == "rwr" and config.rwr.source == "labels" and not config.reward.path)
    reward_fn = make_reward_fn(config.reward, state.device) if needs_reward else None
    state.wait_for_everyone()
    if config.backend == "trl":
        from align.finetune.ddpo_trl import train
    elif config.method == "ddpo":
        from align.finetune.ddpo import train
    elif config.method == "reward_backprop":
        from align.finetune.reward_backprop import train
    else:
        from align.finetune.rwr import train
    began = time.perf_counter()
    result = train(config, out, reward_fn, resume_from)
    result["wall_seconds"] = time.perf_counter() - began
    if state.is_main_process:
        summary = write_summary(out, result)
        print(json.dumps(summary, indent=2))


def write_summary(out, result: dict) -> dict:
    """OUT/metrics.json: per split, oracle alignment and fidelity before and after, and the gap closed."""
    import json

    history = result["history"]
    summary = {"epochs": history[-1]["epoch"], "processes": result["processes"], "optimizer_steps": result["optimizer_steps"],
               "queries": history[-1]["queries"], "rank_weight_digests": result["rank_weight_digests"], "alignment": {}}
    for split in ("unseen", "seen"):
        key, fidelity = f"eval/{split}/oracle_alignment", f"eval/{split}/fidelity_frechet"
        evaluated = [h for h in history if key in h]
        if len(evaluated) < 2:
            continue
        before, after = evaluated[0], evaluated[-1]
        gap = 1 - before[key]
        summary["alignment"][split] = {"baseline": before[key], "final": after[key],
                                       "gap_closed": (after[key] - before[key]) / gap if gap > 0 else None}
        if fidelity in after:
            summary["alignment"][split] |= {"fidelity_frechet": {"baseline": before[fidelity], "final": after[fidelity]},
                                            "fidelity_ratio": after[fidelity] / max(before[fidelity], 1e-12)}
    speeds = [h["perf/samples_per_second"] for h in result["history"] if "perf/samples_per_second" in h]
    if speeds:
        summary["samples_per_second"] = sum(speeds) / len(speeds)
    summary["wall_seconds"] = result["wall_seconds"]  # this invocation, evaluations included
    summary["history"] = result["history"]
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
