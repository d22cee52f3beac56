"""`t2i-align`: one subcommand per stage of the loop (shared/DESIGN.md, CLI contract).

Each subcommand lives in align/commands/<name>.py with `HELP`, `add_arguments(parser)` and
`run(args)`; heavy libraries are imported inside `run` so `--help` stays instant. Bad input
raised as one of BAD_INPUT ends with one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import sys

from align.errors import BadInput

COMMANDS = [
    "generate",
    "label",
    "raters",
    "simulate-raters",
    "export",
    "train-reward",
    "finetune",
    "evaluate",
    "compare",
    "report",
    "demo",
]


def _command_module(name: str):
    return importlib.import_module("align.commands." + name.replace("-", "_"))


def _bad_input_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the user's input is wrong", one per package."""
    types: list[type[BaseException]] = [BadInput]
    for module, name in (("labeling_app.errors", "LabelingError"), ("reward_models.errors", "RewardModelError")):
        try:
            types.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass  # that package has no bad-input type yet
    return tuple(types)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="t2i-align",
        description="Text-to-image alignment with human feedback on Stable Diffusion and the shapes world.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = _command_module(name)
        except ModuleNotFoundError:
            continue  # not built yet
        # argparse %-formats help strings (not descriptions): "95%" must reach it as "95%%".
        command = sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except _bad_input_types() as exc:
        print(f"t2i-align {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"t2i-align {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def default_config(relative: str) -> str:
    """A config shipped with the package (align/configs/; configs/ at the repository root links to it),
    found wherever the command runs from and however t2i-align was installed."""
    return str(importlib.resources.files("align") / "configs" / relative)


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    """`--config FILE` plus positional dotted overrides, shared by every configurable command."""
    parser.add_argument("--config", default=default_config, help=f"YAML config (default: {default_config})")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. sampling.steps=50"
    )


if __name__ == "__main__":
    sys.exit(main())
