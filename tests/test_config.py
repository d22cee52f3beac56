"""YAML configs with dotted overrides: every bad key, type or file is one BadInput sentence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from align.config import load_config
from align.errors import BadInput


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    name: str = "x"
    path: str | None = None
    flags: list[int] = field(default_factory=list)
    train: Inner = field(default_factory=Inner)


def test_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\ntrain:\n  lr: 1e-4\n  steps: 5\n")
    config = load_config(Outer, path, ["train.steps=7", "train.mode=b", "flags=[1, 2]", "path=null"])
    assert config == Outer(name="run", path=None, flags=[1, 2], train=Inner(lr=1e-4, steps=7, mode="b"))


def test_int_is_accepted_for_float():
    assert load_config(Outer, None, ["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.lrr=1", "unknown config key 'train.lrr'"),
        ("train.steps=many", "'train.steps'"),
        ("train.steps=1.5", "'train.steps'"),
        ("train.mode=c", "must be one of"),
        ("name=3", "'name'"),
        ("train=4", "must be a mapping"),
        ("nodot", "key.sub=value"),
    ],
)
def test_bad_overrides(override, words):
    with pytest.raises(BadInput, match=words.replace("[", r"\[").replace(".", r"\.")):
        load_config(Outer, None, [override])


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_config(Outer, path)


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_config(Outer, tmp_path / "none.yaml")


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(BadInput, match="mapping"):
        load_config(Outer, path)
