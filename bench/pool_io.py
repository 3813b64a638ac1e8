"""Pool write/read throughput vs plain pyarrow.parquet on the same 1,000,000 measurements, same process.

    python bench/pool_io.py [--rows N]

Write: `Pool.add("measurements", frame)` (validation, reference check, atomic segment) against
`pq.write_table(pa.Table.from_pandas(frame))`. Read: `Pool.read_arrow("measurements")` into numpy arrays
against `pq.read_table(...)` into numpy arrays. Ratios >= 0.8 mean the store costs at most 25% more.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from timing import in_turns

from harness.pool import Pool


def to_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table[name].to_numpy() for name in ("sample_id", "model", "value")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n_samples = 1000
    n_models = args.rows // n_samples
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = pd.DataFrame(
            {
                "source": "bench",
                "kind": "multiple_choice",
                "prompt": [f"question {i}" for i in range(n_samples)],
                "choices": [["a", "b"]] * n_samples,
                "target": 0,
            }
        )
        seed_pool = Pool(root / "seed", create=True)
        seed_pool.add("samples", samples)
        ids = seed_pool.samples()["sample_id"].to_numpy()
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(
            {
                "sample_id": np.tile(ids, n_models),
                "model": np.repeat([f"model-{m:04d}" for m in range(n_models)], n_samples),
                "metric": "acc",
                "run_id": "bench",
                "value": rng.integers(0, 2, n_samples * n_models).astype(float),
            }
        )
        counter = iter(range(10**6))

        def ours_write() -> None:
            pool = Pool(root / f"pool{next(counter)}", create=True)
            pool.add("samples", samples)
            start = time.perf_counter()
            pool.add("measurements", frame)
            ours_write.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]

        def plain_write() -> None:
            pq.write_table(
                pa.Table.from_pandas(frame, preserve_index=False), root / "plain.parquet", compression="zstd"
            )

        write_ours, write_plain = map(min, in_turns(args.repeats, ours_write, plain_write))
        pool = Pool(root / "pool0")
        read_ours, read_plain = map(
            min,
            in_turns(
                args.repeats,
                lambda: to_numpy(pool.read_arrow("measurements")),
                lambda: to_numpy(pq.read_table(root / "plain.parquet")),
            ),
        )
        assert pool.read_arrow("measurements").num_rows == len(frame)

    rows = len(frame)
    print(f"rows: {rows:,} ({n_models} models x {n_samples} samples); best of {args.repeats}")
    print(
        f"write  pool {rows / write_ours:>12,.0f} rows/s   pyarrow {rows / write_plain:>12,.0f} rows/s"
        f"   ratio {write_plain / write_ours:.2f}"
    )
    print(
        f"read   pool {rows / read_ours:>12,.0f} rows/s   pyarrow {rows / read_plain:>12,.0f} rows/s"
        f"   ratio {read_plain / read_ours:.2f}"
    )


if __name__ == "__main__":
    main()
