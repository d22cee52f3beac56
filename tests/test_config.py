"""YAML configs with dotted overrides: every bad key, type or file is one BadInput sentence."""

from __future__ import annotations

import re
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


def test_an_unquoted_no_is_the_choice_no_where_a_choice_is_expected(tmp_path):
    """`mixed_precision=no` on the command line: YAML 1.1 reads no as false, the schema wants the word."""
    from align.finetune.config import FinetuneConfig

    config = load_config(FinetuneConfig, None, ["mixed_precision=no"])
    assert config.mixed_precision == "no"
    with pytest.raises(BadInput, match="must be one of"):
        load_config(FinetuneConfig, None, ["mixed_precision=yes"])  # no such choice: still refused


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
    with pytest.raises(BadInput, match=re.escape(words)):
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


@dataclass
class Bounded:
    steps: int = field(default=10, metadata={"min": 1})
    rate: float = field(default=0.5, metadata={"above": 0, "max": 1})
    free: float = 1.0


@pytest.mark.parametrize(("override", "words"), [
    ("steps=0", "'steps' in defaults must be at least 1, got 0"),
    ("rate=0", "'rate' in defaults must be above 0, got 0"),
    ("rate=1.5", "must be at most 1, got 1.5"),
    ("free=nan", "'free' in defaults must be a finite number, got nan"),
    ("free=-.inf", "must be a finite number, got -inf"),
])
def test_declared_bounds_and_finite_floats(override, words):
    with pytest.raises(BadInput, match=re.escape(words)):
        load_config(Bounded, None, [override])
    assert load_config(Bounded, None, ["steps=1", "rate=1", "free=-3"]) == Bounded(1, 1.0, -3.0)


# Values a command used to take and end in a traceback (or run wrongly) with; each now one sentence, exit 2.
@pytest.mark.parametrize(("argv", "key"), [
    (["finetune", "--out", "{tmp}/o", "sampling.batches_per_epoch=0"], "sampling.batches_per_epoch"),
    (["finetune", "--out", "{tmp}/o", "train.inner_epochs=0"], "train.inner_epochs"),
    (["finetune", "--out", "{tmp}/o", "eval.images_per_prompt=0"], "eval.images_per_prompt"),
    (["finetune", "--out", "{tmp}/o", "train.lr=nan"], "train.lr"),
    (["train-reward", "--labels", "{tmp}/l.parquet", "--out", "{tmp}/o", "train.max_epochs=0"], "train.max_epochs"),
    (["train-reward", "--labels", "{tmp}/l.parquet", "--out", "{tmp}/o", "head.dropout=1"], "head.dropout"),
    (["evaluate", "--run", "{tmp}", "batch_size=0"], "batch_size"),
    (["compare", "--run", "a={tmp}", "--run", "b={tmp}", "--out", "{tmp}/c.json", "resamples=10"], "resamples"),
    (["generate", "--out", "{tmp}/o", "sampling.steps=-1"], "sampling.steps"),
    (["demo", "--out", "{tmp}/o", "noise=2"], "noise"),
])
def test_every_command_refuses_out_of_range_values(tmp_path, capsys, argv, key):
    from align.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"config key '{key}'" in err, err
    assert not (tmp_path / "o").exists()


def shipped_configs():
    from align.cli import default_config

    root = __import__("pathlib").Path(default_config("."))
    return sorted(p for world in ("shapes", "sd15") for p in (root / world).glob("*.yaml"))


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads_and_passes_its_checks(path):
    """Each YAML file the package ships is a valid config of its command, within every declared bound."""
    from align.demo.config import DemoConfig
    from align.evaluation.compare import CompareConfig
    from align.evaluation.evaluate import EvaluateConfig
    from align.finetune.config import FinetuneConfig
    from align.generation.generate import GenerateConfig
    from align.shapes.captions import CaptionModel
    from reward_models.config import RewardConfig

    schema = {"generate": GenerateConfig, "evaluate": EvaluateConfig, "compare": CompareConfig, "reward": RewardConfig,
              "demo": DemoConfig, "demo_quick": DemoConfig, "captions": CaptionModel}.get(path.stem, FinetuneConfig)
    # What a user adds on the command line: the reward model, and the labels RWR learns from.
    config = load_config(schema, path, ["reward.path=runs/reward", "rwr.labels=labels.parquet"] if schema is FinetuneConfig else [])
    if schema is FinetuneConfig:  # its invariants held on load (align.config.Checked); the inputs a run reads:
        config.require_inputs()


def test_invariants_hold_for_every_caller_not_only_load_config():
    """A config built in code, or changed with dataclasses.replace, is checked as a loaded one is."""
    import dataclasses

    from align.demo.config import DemoConfig
    from align.finetune.config import FinetuneConfig, SamplingSettings, TrainSettings
    from align.generation.generate import GenerateConfig

    with pytest.raises(BadInput, match="divisible by train.batch_size"):
        FinetuneConfig(sampling=SamplingSettings(batch_size=16), train=TrainSettings(batch_size=5))
    with pytest.raises(BadInput, match="config key 'steps' in SamplingSettings must be at least 1"):
        SamplingSettings(steps=0)
    with pytest.raises(BadInput, match="sampling.eta > 0"):
        dataclasses.replace(FinetuneConfig(), sampling=SamplingSettings(eta=0.0))
    with pytest.raises(BadInput, match="needs a reward model"):
        GenerateConfig(best_of=2)
    with pytest.raises(BadInput, match="between 1 and raters"):
        DemoConfig(raters=1)
    FinetuneConfig()  # the defaults are consistent; what a run reads is checked apart:
    with pytest.raises(BadInput, match="needs reward.path"):
        FinetuneConfig().require_inputs()
