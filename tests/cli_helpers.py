"""`t2i-align` in the tests: in this process through `align.cli.main`, for the many checks of what a
command does and refuses, or as a real process where the process itself is what is tested (the
console script, exit codes, an environment read at import time)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

from align.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*argv: str) -> Result:
    """`t2i-align ARGV` run by this process: its exit code and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's usage errors and --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def cli_process(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`t2i-align ARGV` as a process of its own, with `env` added to this one's environment."""
    return subprocess.run([sys.executable, "-m", "align.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def one_sentence(result) -> str:
    """The refusal of bad input: exit code 2 and one line on stderr, no traceback."""
    err = result.stderr.strip()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err
