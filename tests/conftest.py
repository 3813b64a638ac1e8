"""Shared fixtures: offline hubs, the shared data folder, and a CLI runner that returns (code, stdout, stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PYTEST_XDIST_WORKER" in os.environ:
    # one thread per worker (`make test` runs two on two cores): torch's default of a thread per core in
    # each worker oversubscribes the CPU, and two real-model tests at once took 177 s instead of 77 s
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip with the reason when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run `poolbench --pool <tmp>/pool ARGS...` in a real process; returns the CompletedProcess."""

    def run(*args: str, pool: Path | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "harness.cli", "--pool", str(pool or tmp_path / "pool"), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}: {done.stderr}")
        return done

    return run
