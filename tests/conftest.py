"""Shared helpers and fixtures: the labeling tests' (names start with `labeling_`) and the quick demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageDraw

ALIGN_CLI = [sys.executable, "-m", "align.cli"]
ADMIN, ADMIN_PASSWORD = "ada", "admin-password-1"
RATER_PASSWORD = "rater-password-1"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright: its own browser download does not work here
COLOURS = {"red": (220, 30, 30), "blue": (30, 70, 230), "green": (30, 170, 50)}

# `make test` runs two pytest-xdist workers, a whole file each (so a file's fixtures, the quick demo's
# included, run once). Each gets its share of the cores for torch and for the commands it starts:
# more threads than cores makes OpenMP's busy-waiting threads starve each other.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("MKL_NUM_THREADS", _threads)


def make_run_dir(root: Path, n: int, name: str = "run") -> Path:
    """A run dir of `n` coloured squares on white, each with its matching prompt."""
    items = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        image = Image.new("RGB", (64, 64), (255, 255, 255))
        ImageDraw.Draw(image).rectangle([16, 16, 40, 40], fill=COLOURS[colour])
        items.append((f"a {colour} square", image))
    return write_run_dir(root / name, items)


def write_run_dir(run: Path, items: list[tuple[str, Image.Image]]) -> Path:
    """A run dir as `t2i-align generate` writes it: images/<id>.png and samples.parquet, one row per item."""
    (run / "images").mkdir(parents=True)
    rows = []
    for i, (prompt, image) in enumerate(items):
        sample_id = f"{i:06d}"
        image.save(run / "images" / f"{sample_id}.png")
        rows.append(
            {
                "id": sample_id,
                "prompt": prompt,
                "category": ["count", "color", "background", "combination"][i % 4],
                "split": "train" if i % 5 else "heldout",
                "seed": i,
                "model": "tiny-sd",
                "guidance": 7.5,
                "steps": 20,
                "image_path": f"images/{sample_id}.png",
            }
        )
    frame = pd.DataFrame(rows).astype({"seed": "int64", "steps": "int64", "guidance": "float64"})
    frame.to_parquet(run / "samples.parquet", index=False)
    (run / "config.yaml").write_text("model: tiny-sd\n")
    return run


def add_rater(accounts: Path, name: str, password: str = RATER_PASSWORD, admin: bool = False) -> None:
    """A rater account, written in-process through the accounts API, as `t2i-align raters add` writes it
    (the command itself, in a subprocess: test_labeling_accounts)."""
    from labeling_app.accounts import Accounts

    Accounts(accounts).add(name, password, admin=admin)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelServer:
    """`t2i-align label` in a subprocess: start, wait until it answers, kill."""

    def __init__(self, run: Path, accounts: Path, log: Path, overlap: int = 1, lease_seconds: float = 300,
                 idle_minutes: float = 60, extra_args: tuple[str, ...] = ()):
        self.run, self.accounts, self.log = run, accounts, log
        self.overlap, self.lease_seconds, self.idle_minutes = overlap, lease_seconds, idle_minutes
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> LabelServer:
        import httpx

        command = [*ALIGN_CLI, "label", str(self.run), "--port", str(self.port), "--accounts", str(self.accounts),
                   "--overlap", str(self.overlap), "--lease-seconds", str(self.lease_seconds),
                   "--idle-minutes", str(self.idle_minutes), *self.extra_args]
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command, stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/gradio_api/startup-events", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"label server did not answer within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def read_only(*paths: Path):
    """Make files and folders unwritable while the block runs. Root ignores permission bits, so as root
    (CI) the immutable attribute is used: it refuses writes even to root, as a read-only disk would."""
    if os.geteuid() == 0:
        def chattr(flag: str) -> bool:
            return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0

        if not chattr("+i"):
            pytest.skip("cannot make files read-only as root here (chattr +i needs CAP_LINUX_IMMUTABLE)")
        try:
            yield
        finally:
            assert chattr("-i")
    else:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


@pytest.fixture
def labeling_accounts(tmp_path: Path) -> Path:
    accounts = tmp_path / "raters.db"
    add_rater(accounts, ADMIN, ADMIN_PASSWORD, admin=True)
    add_rater(accounts, "bob")
    return accounts


@dataclass
class DemoRun:
    out: Path
    stdout: str
    seconds: float


@pytest.fixture(scope="session")
def quick_demo_run(tmp_path_factory) -> DemoRun:
    """`t2i-align demo --quick`, once per test session, as a user runs it."""
    out = tmp_path_factory.mktemp("demo") / "quick"
    began = time.perf_counter()
    # A guard against a hang, not a speed test: about 3 minutes on one 2-core machine, over 10 on a slower one.
    result = subprocess.run([*ALIGN_CLI, "demo", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(out, result.stdout, time.perf_counter() - began)


@pytest.fixture(scope="session")
def quick_demo(quick_demo_run) -> Path:
    return quick_demo_run.out
