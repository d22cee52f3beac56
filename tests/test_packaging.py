"""A regular (non-editable) install works: the wheel holds the default configs, the shipped models and
the entry point that names the shipped CLIP, and a reward model directory moved elsewhere still loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reward_helpers import rated_labels, trained_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")  # setuptools' build folder, outside the checkout
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(build)})
    (built,) = out.glob("t2i_align-*.whl")
    return built


def test_the_wheel_holds_configs_models_and_the_named_backbone(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in ("shapes/ddpo.yaml", "shapes/rwr.yaml", "shapes/reward_backprop.yaml", "shapes/generate.yaml",
                   "shapes/reward.yaml", "shapes/demo.yaml", "sd15/ddpo.yaml", "accelerate/multi_gpu.yaml",
                   "sd15/architecture/unet.json"):
        assert f"align/configs/{config}" in names, config
    assert any(n.startswith("align/shapes/weights/tiny-clip/") for n in names)
    assert any(n.startswith("align/shapes/weights/tiny-sd/") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[reward_models.named_backbones]" in text and "shapes-tiny-clip = align.models:shipped_tiny_clip" in text


def test_an_installed_wheel_finds_its_configs_and_loads_a_moved_reward_directory(wheel, tmp_path_factory, tmp_path):
    root = tmp_path_factory.getbasetemp() / "reward-data"
    reward = trained_model(root, rated_labels(root))
    backbone = json.loads((reward / "config.json").read_text())["backbone"]
    assert backbone["name"] == "shapes-tiny-clip"  # by name, not by a path into this checkout
    moved = tmp_path / "elsewhere" / "reward"
    shutil.copytree(reward, moved)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    script = (
        "import align, align.cli, sys\n"
        f"assert align.__file__.startswith({str(site)!r}), align.__file__\n"
        "from align.config import load_config\n"
        "from align.finetune.config import FinetuneConfig\n"
        "config = load_config(FinetuneConfig, align.cli.default_config('shapes/ddpo.yaml'))\n"
        "from reward_models.reward_model import RewardModel\n"
        f"model = RewardModel.from_pretrained({str(moved)!r})\n"
        "print(config.method, type(model).__name__)\n"
    )
    # The installed copy comes first on the path; run outside the checkout so its folders are not found instead.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ddpo", "RewardModel"]
