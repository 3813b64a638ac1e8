"""`poolbench demo --small`: the main job end to end with the real model, and its rerun reusing the pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.pool import Pool

pytestmark = pytest.mark.slow


def test_demo_small_runs_end_to_end_and_reuses_the_pool(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "harness.cli", "demo", "--small", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (
        "poolbench leaderboard (pl-conditional)" in first.stdout
        and "compare smollm2-135m-int8 vs smollm2-135m" in first.stdout
    )
    assert (out / "report.html").stat().st_size > 100_000
    ranked = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--pool", str(out / "pool"), "rank", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    models = json.loads(ranked.stdout)["models"]
    assert len(models) >= 6
    assert {"smollm2-135m", "smollm2-135m-3shot", "smollm2-135m-int8", "random"} <= {m["model"] for m in models}
    backends = {run["model"]: run["backend"] for run in json.loads(ranked.stdout)["runs"]}
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the hf backend's default
    assert backends["smollm2-135m"] == f"hf ({device}, float32)" and backends["random"] == "baseline-random"
    assert backends["smollm2-135m-int8"] == "hf (cpu, float32, int8)"  # dynamic int8 runs on the CPU
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stderr.count("already measured") == 6
    assert "older poolbench" not in again.stderr
    old_question = {"source": "starter/capitals", "kind": "multiple_choice", "prompt": "Question: Old?\nAnswer:"}
    Pool(out / "pool").add("samples", pd.DataFrame([{**old_question, "choices": ["a", "b"], "target": 0}]))
    older = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert older.returncode == 0 and "also holds 1 samples of an older poolbench's starter tasks" in older.stderr
