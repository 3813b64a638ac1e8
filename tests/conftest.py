"""Shared fixtures: offline hubs, the shared data folder, a CLI runner that returns (code, stdout, stderr), and
an S3 bucket for pools on object storage."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
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
    """Run `poolbench --pool <tmp>/pool ARGS...` (or --pool POOL) in a real process, `stdin` its input if
    given; returns the CompletedProcess."""

    def run(
        *args: str, pool: Path | str | None = None, check: bool = False, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "harness.cli", "--pool", str(pool or tmp_path / "pool"), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, input=stdin)
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}: {done.stderr}")
        return done

    return run


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 server (moto's) on a free local port, for the session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_pool(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a pool in a fresh bucket on that server (s3://BUCKET/pool, not created yet), reached through
    s3fs as any bucket would be: its endpoint and credentials are in the environment, so subprocesses reach it."""
    import s3fs

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "poolbench",
        "AWS_SECRET_ACCESS_KEY": "poolbench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"pool-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    return f"s3://{bucket}/pool"
