"""YAML configs checked against dataclasses, with dotted command-line overrides.

A config file is a nested mapping; every key must exist in the command's dataclass schema
and every value must have the declared type. `train.lr=1e-4` style overrides are parsed as
YAML scalars, so `true`, `3`, `1e-4` and `[1, 2]` mean what they look like.

Numbers are checked against the bounds a field declares in its metadata, e.g.
`steps: int = field(default=20, metadata={"min": 1})`: "min" / "max" are inclusive, "above" /
"below" exclusive. Every float must be finite. Plain dict metadata, so that reward_models (a leaf
package) declares its bounds without importing this module.

A config dataclass that derives from `Checked` holds its bounds and its invariants (`check`) from
the moment it is built, whoever builds it: load_config, a script, or `dataclasses.replace`, as
TRL's DDPOConfig checks itself in __post_init__.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from align.errors import BadInput

T = TypeVar("T")


class Checked:
    """Base of the config dataclasses: single bounds, then `check`, when an instance is built."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_bounds(f.metadata, getattr(self, f.name), f.name, type(self).__name__)
        self.check()

    def check(self) -> None:
        """What single bounds cannot say; a config with invariants across its keys overrides this."""


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Read `path` (optional), apply `key.sub=value` overrides, and build a checked `schema`."""
    raw: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise BadInput(f"override '{item}' is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            value = text
        _set_dotted(raw, key.split("."), value)
    return _build(schema, raw, prefix="", source=source)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML next to the outputs it produced."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise BadInput(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"config file {path} must hold a mapping of keys to values, not a {type(data).__name__}")
    return data


def _set_dotted(raw: dict, keys: list[str], value: Any) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _build(schema: type, raw: Any, prefix: str, source: str):
    if not isinstance(raw, dict):
        raise BadInput(f"config key '{prefix.rstrip('.')}' in {source} must be a mapping")
    hints = get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(prefix + name for name in fields)
        raise BadInput(f"unknown config key '{prefix}{unknown[0]}' in {source} (known keys: {known})")
    values = {}
    for name, value in raw.items():
        values[name] = _check(hints[name], value, prefix + name, source)
        _check_bounds(fields[name].metadata, values[name], prefix + name, source)
    missing = [
        prefix + f.name
        for f in fields.values()
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise BadInput(f"config key '{missing[0]}' is required but missing from {source}")
    return schema(**values)


# Why not pydantic (installed with gradio): its errors are lists of locations rather than the
# CLI contract's one sentence naming the key and the file, it needs a config on every dataclass
# to refuse unknown keys, and YAML 1.1's "1e-4" string still needs the float rule below.
YAML_BOOLEANS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}


def _check(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", source)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(option, value, key, source)
            except BadInput:
                continue
        raise _wrong_type(key, value, hint, source)
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads an unquoted no / off / yes / on as a boolean
            value = next((word for word in YAML_BOOLEANS[value] if word in get_args(hint)), value)
        if value not in get_args(hint):
            choices = ", ".join(repr(c) for c in get_args(hint))
            raise BadInput(f"config key '{key}' in {source} must be one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(key, value, hint, source)
        (item_hint, *_) = get_args(hint) or (Any,)
        return [_check(item_hint, item, f"{key}[{i}]", source) for i, item in enumerate(value)]
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-4" as a string
        except ValueError:
            pass
    if hint in (int, float) and isinstance(value, bool):
        raise _wrong_type(key, value, hint, source)
    if not isinstance(value, hint):
        raise _wrong_type(key, value, hint, source)
    return value


BOUNDS = {"min": ("at least", lambda v, b: v >= b), "max": ("at most", lambda v, b: v <= b),
          "above": ("above", lambda v, b: v > b), "below": ("below", lambda v, b: v < b)}


def _check_bounds(metadata, value: Any, key: str, source: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"config key '{key}' in {source} must be a finite number, got {value}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    for kind, (words, holds) in BOUNDS.items():
        if kind in metadata and not holds(value, metadata[kind]):
            raise BadInput(f"config key '{key}' in {source} must be {words} {metadata[kind]}, got {value}")


def _wrong_type(key: str, value: Any, hint: Any, source: str) -> BadInput:
    name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return BadInput(f"config key '{key}' in {source} must be {name}, got {value!r}")
