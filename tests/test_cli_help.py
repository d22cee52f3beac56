"""`t2i-align --help` and every subcommand's --help print their usage and exit 0, without a model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from align.cli import COMMANDS


def help_of(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "align.cli", *args, "--help"], capture_output=True, text=True)


def test_the_top_level_help_lists_every_command():
    result = help_of()
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout
    assert "95% intervals" in result.stdout  # compare's help, once %-formatted by argparse


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_s_help(name):
    result = help_of(name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: t2i-align {name}")
