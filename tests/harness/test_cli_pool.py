"""`poolbench pool ...`: the documented JSON shape, defaults and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from harness.cli_data import CROWDED_SEGMENTS
from harness.pool import Pool
from harness.schema import normalize


def test_stats_of_an_empty_pool_is_zeros_in_the_documented_shape(cli) -> None:
    cli("pool", "init", check=True)
    done = cli("pool", "stats", "--json", check=True)
    assert json.loads(done.stdout) == {
        "samples": 0,
        "models": 0,
        "measurements": 0,
        "comparisons": 0,
        "sources": {},
    }


def test_missing_pool_is_one_line_and_exit_2(cli, tmp_path: Path) -> None:
    done = cli("pool", "stats", pool=tmp_path / "absent")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "no pool" in done.stderr
    assert not (tmp_path / "absent").exists()


def test_pool_env_var_is_the_default(tmp_path: Path) -> None:
    env = {**os.environ, "POOLBENCH_POOL": str(tmp_path / "from-env")}
    subprocess.run([sys.executable, "-m", "harness.cli", "pool", "init"], env=env, check=True)
    assert (tmp_path / "from-env" / "pool.json").exists()


def test_stats_compact_export(cli, tmp_path: Path) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", pd.DataFrame({"source": ["a", "a", "b"], "kind": "generation", "prompt": ["x", "y", "z"]}))
    ids = pool.samples().sort_values("prompt")["sample_id"].tolist()
    pool.add("measurements", pd.DataFrame({"sample_id": ids[:2], "model": "m", "value": [1.0, 0.0]}))
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "n", "value": [0.5, 0.5, 0.5]}))
    stats = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    assert stats == {
        "samples": 3,
        "models": 2,
        "measurements": 5,
        "comparisons": 0,
        "sources": {"a": {"samples": 2, "measurements": 4}, "b": {"samples": 1, "measurements": 1}},
    }
    before = cli("pool", "stats", check=True)
    assert "segments: samples 1, measurements 2, models 2" in before.stdout and not before.stderr
    cli("pool", "compact", check=True)
    assert len(pool.store.segments("measurements")) == 1
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout) == stats
    cli("pool", "export", str(tmp_path / "out"), check=True)
    assert pq.read_table(tmp_path / "out" / "measurements.parquet").num_rows == 5
    onto_a_file = cli("pool", "export", str(tmp_path / "out" / "measurements.parquet"))
    assert onto_a_file.returncode == 2 and "measurements.parquet is a file: name a folder" in onto_a_file.stderr
    vote = pd.DataFrame({"sample_id": ids[:1], "model_a": "m", "model_b": "n", "outcome": "a"})
    vote_row = normalize("comparisons", vote, pd.Timestamp.now(tz="UTC"))
    for _ in range(CROWDED_SEGMENTS):  # as many as a killed run of 32,000 samples leaves
        pool.store.append("comparisons", vote_row)
    crowded = cli("pool", "stats", check=True)
    assert f"measurements 1, comparisons {CROWDED_SEGMENTS}" in crowded.stdout
    assert f"many segments in comparisons ({CROWDED_SEGMENTS})" in crowded.stderr


def test_cli_default_method_is_the_library_default() -> None:
    import aggregators
    from harness.cli_common import DEFAULT_METHOD

    assert DEFAULT_METHOD == aggregators.DEFAULT_METHOD
