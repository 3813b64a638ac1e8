"""One model's run split into shards (`poolbench run --shard K/N`) vs the same run in one process.

    python bench/shards.py [--samples 200] [--shards 2]

SmolLM2-135M (hf, CPU) on the same starter questions, each `poolbench run` a process of its own, timed from
start to end (model loading included: each shard loads the model):
  * one process with one thread (the baseline),
  * N shards at once, one thread each (what N GPUs or machines do, one model each),
  * one process with N threads (what the cores give one process on this machine).
Ratios are the baseline's time over each's. The shards' measurements are checked against the baseline's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.pool import Pool

MODEL = ["run", "--model", "hf", "--model-args", "pretrained=builtin:smollm2-135m", "--name", "smollm2"]
MODEL += ["--no-progress"]


def poolbench(pool: Path, *args: str, threads: int = 1) -> subprocess.Popen[bytes]:
    """`poolbench --pool POOL ARGS...` started in a process with `threads` threads for torch."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "--pool", str(pool), *args], env=env)


def timed_runs(pool: Path, runs: list[tuple[list[str], int]]) -> float:
    """Seconds from starting every run (args, threads) at once to the last one's end."""
    start = time.perf_counter()
    procs = [poolbench(pool, *args, threads=threads) for args, threads in runs]
    if any(proc.wait() != 0 for proc in procs):
        raise SystemExit("a run failed")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200, help="starter questions (a fifth per task)")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    select = [*MODEL, "--limit", str(args.samples // 5)]
    with tempfile.TemporaryDirectory() as tmp:
        pools = {name: Path(tmp, name) for name in ("warm-up", "one thread", "shards", "threads")}
        if any(poolbench(pool, "add", "starter").wait() != 0 for pool in pools.values()):
            raise SystemExit("adding the starter tasks failed")
        timed_runs(pools["warm-up"], [([*MODEL, "--limit", "1"], 1)])  # converts the model once, if not yet
        seconds = {
            "one process, 1 thread": timed_runs(pools["one thread"], [(select, 1)]),
            f"{args.shards} shards at once, 1 thread each": timed_runs(
                pools["shards"], [([*select, "--shard", f"{k}/{args.shards}"], 1) for k in range(1, args.shards + 1)]
            ),
            f"one process, {args.shards} threads": timed_runs(pools["threads"], [(select, args.shards)]),
        }
        values = {name: Pool(pools[name]).measurements().set_index(["sample_id", "metric"])["value"] for name in pools}
    baseline = values["one thread"]
    for name in ("shards", "threads"):
        got = values[name].reindex(baseline.index)
        if len(values[name]) != len(baseline) or got.isna().any():
            raise SystemExit(f"{name} measured other samples than the baseline")
        diff = float(np.max(np.abs(got - baseline) / np.maximum(np.abs(baseline), 1)))
        print(f"{name}: the baseline's {len(baseline)} measurements, largest relative difference {diff:.1e}")
    base = seconds["one process, 1 thread"]
    print(f"{args.samples} starter questions, SmolLM2-135M on {os.cpu_count()} CPUs, model loading included")
    for name, took in seconds.items():
        print(f"  {name:<36} {took:6.1f} s   {base / took:4.2f}x")


if __name__ == "__main__":
    main()
