"""Pool write/read throughput vs plain pyarrow.parquet on the same 1,000,000 measurements, same process.

    python bench/pool_io.py [--rows N]

Write: `Pool.add("measurements", frame)` (validation, reference check, atomic segment) against
`pq.write_table(pa.Table.from_pandas(frame))`. Read: `Pool.read_arrow("measurements")` into numpy arrays
against `pq.read_table(...)` into numpy arrays. Ratios >= 0.8 mean the store costs at most 25% more.
Batch: what the runner writes per batch (64 measurements and 64 responses, one `Pool.write`) into a pool of
`--pool-samples` samples, against `pq.write_table` of the same two frames: the cost of the store's checks
(sample references among them) as the pool grows.
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
from questions import two_choice_questions
from timing import best_in_turns

from harness.pool import Pool


def to_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table[name].to_numpy() for name in ("sample_id", "model", "value")}


def batch_writes(root: Path, pool_samples: int, repeats: int) -> tuple[float, float]:
    """Best seconds of one runner-sized `Pool.write` into a pool of `pool_samples` samples, and of plain
    `pq.write_table` of the same frames."""
    pool = Pool(root / "big", create=True)
    pool.add("samples", two_choice_questions(pool_samples))
    ids = pool.read_arrow("samples", columns=["sample_id"])["sample_id"].to_numpy(zero_copy_only=False)
    batches = iter(range(10**6))

    def frames() -> dict[str, pd.DataFrame]:
        batch = ids[next(batches) * 64 % pool_samples :][:64]
        return {
            "measurements": pd.DataFrame({"sample_id": batch, "model": "m", "run_id": "r", "value": 1.0}),
            "responses": pd.DataFrame({"sample_id": batch, "model": "m", "run_id": "r", "response": "{}"}),
        }

    def plain() -> None:
        for name, frame in frames().items():
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / f"{name}.parquet")

    return best_in_turns(repeats, lambda: pool.write(frames(), known_new=True), plain)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pool-samples", type=int, default=200_000)
    args = parser.parse_args()
    n_samples = 1000
    n_models = args.rows // n_samples
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = two_choice_questions(n_samples)
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

        write_ours, write_plain = best_in_turns(args.repeats, ours_write, plain_write)
        pool = Pool(root / "pool0")
        read_ours, read_plain = best_in_turns(
            args.repeats,
            lambda: to_numpy(pool.read_arrow("measurements")),
            lambda: to_numpy(pq.read_table(root / "plain.parquet")),
        )
        assert pool.read_arrow("measurements").num_rows == len(frame)
        batch_ours, batch_plain = batch_writes(root, args.pool_samples, args.repeats)

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
    print(
        f"batch  pool {batch_ours * 1000:>9.1f} ms per write   pyarrow {batch_plain * 1000:>9.1f} ms   "
        f"ratio {batch_plain / batch_ours:.2f}   (64 measurements + 64 responses, {args.pool_samples:,} samples)"
    )


if __name__ == "__main__":
    main()
