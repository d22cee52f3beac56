"""`t2i-align demo`: the whole human-feedback loop on the shapes world, ending in report.html."""

from align.cli import add_config_arguments, default_config

HELP = "run the whole loop on the shapes world: generate, rate, reward, DDPO and RWR, round 2, report"


def add_arguments(parser) -> None:
    add_config_arguments(parser, None)
    parser.add_argument("--out", default="runs/demo", help="demo directory (default runs/demo); a rerun reuses finished stages")
    parser.add_argument("--quick", action="store_true", help="a small variant of a few minutes (configs/shapes/demo_quick.yaml)")


def run(args) -> None:
    from pathlib import Path

    from align.config import load_config, save_config, to_dict
    from align.demo.config import DemoConfig
    from align.demo.stages import Demo
    from align.errors import BadInput
    from align.rundir import ensure_writable_dir

    path = args.config or default_config("shapes/demo_quick.yaml" if args.quick else "shapes/demo.yaml")
    config = load_config(DemoConfig, path, args.overrides)
    out = Path(args.out)
    saved = out / "demo.yaml"
    if saved.is_file():
        # read through the schema, so that a key added since the run was started counts as its default
        if to_dict(load_config(DemoConfig, saved, [])) != to_dict(config):
            raise BadInput(f"{out} holds a demo run with another config ({saved}); choose another --out to keep both")
    else:
        ensure_writable_dir(out)
        save_config(config, saved)
    report = Demo(config, out).run()
    print(f"\nreport: {report.resolve()}")
    # The simulated raters filled round 1 and round 2; no one has rated the DDPO model's held-out images.
    print("rate the DDPO model's held-out images by hand in the browser (add yourself as a rater first):")
    print(f"  t2i-align raters add $USER --admin && t2i-align label {out / 'eval/ddpo-heldout'}")
