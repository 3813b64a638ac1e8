"""Pool write/read throughput vs plain pyarrow.parquet on the same 1,000,000 measurements, same process.

    python bench/pool_io.py [--rows N] [--s3]

Write: `Pool.add("measurements", frame)` (validation, reference check, atomic segment) against
`pq.write_table(pa.Table.from_pandas(frame))`. Read: `Pool.read_arrow("measurements")` into numpy arrays
against `pq.read_table(...)` into numpy arrays. Ratios >= 0.8 mean the store costs at most 25% more.
Rename: `Pool.rename_model` of one model (the measurements and models tables rewritten whole) against
`pq.read_table` and `pq.write_table` of the same measurements; Remove: `Pool.remove_models` of one model, against
the same. Batch: what the runner writes per batch (64 measurements and 64 responses, one `Pool.write`) into a pool of
`--pool-samples` samples, against `pq.write_table` of the same two frames: the cost of the store's checks
(sample references among them) as the pool grows. With --s3, the pools and the plain files are in a bucket of
an S3 server (moto's, in this process, reached through s3fs) instead of a local folder.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from questions import two_choice_questions
from timing import best_in_turns

from harness.pool import Pool
from harness.store import Location, location


@contextlib.contextmanager
def bench_root(s3: bool) -> Iterator[Location]:
    """A fresh local folder, or with `s3` a fresh bucket on a moto S3 server started here."""
    if not s3:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="b", AWS_SECRET_ACCESS_KEY="b")
    s3fs.S3FileSystem().mkdir("bench")
    try:
        yield location("s3://bench/root")
    finally:
        server.stop()


def plain_write(table: pa.Table, path: Location) -> None:
    """`pq.write_table` of `table` to `path`, straight to its file system."""
    if isinstance(path, Path):
        pq.write_table(table, path, compression="zstd")
    else:
        pq.write_table(table, path.path, filesystem=path.fs, compression="zstd")


def plain_read(path: Location) -> pa.Table:
    return pq.read_table(path) if isinstance(path, Path) else pq.read_table(path.path, filesystem=path.fs)


def to_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table[name].to_numpy() for name in ("sample_id", "model", "value")}


def batch_writes(root: Location, pool_samples: int, repeats: int) -> tuple[float, float]:
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
            plain_write(pa.Table.from_pandas(frame, preserve_index=False), root / f"{name}.parquet")

    return best_in_turns(repeats, lambda: pool.write(frames(), known_new=True), plain)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pool-samples", type=int, default=200_000)
    parser.add_argument("--s3", action="store_true", help="in a bucket of a local S3 server, not a folder")
    args = parser.parse_args()
    n_samples = 1000
    n_models = args.rows // n_samples
    with bench_root(args.s3) as root:
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

        write_ours, write_plain = best_in_turns(
            args.repeats,
            ours_write,
            lambda: plain_write(pa.Table.from_pandas(frame, preserve_index=False), root / "plain.parquet"),
        )
        pool = Pool(root / "pool0")
        read_ours, read_plain = best_in_turns(
            args.repeats,
            lambda: to_numpy(pool.read_arrow("measurements")),
            lambda: to_numpy(plain_read(root / "plain.parquet")),
        )
        assert pool.read_arrow("measurements").num_rows == len(frame)
        batch_ours, batch_plain = batch_writes(root, args.pool_samples, args.repeats)
        names = itertools.cycle([("model-0000", "renamed"), ("renamed", "model-0000")])
        rename_ours, rename_plain = best_in_turns(
            args.repeats,
            lambda: pool.rename_model(*next(names)),
            lambda: plain_write(plain_read(root / "plain.parquet"), root / "plain-copy.parquet"),
        )
        assert pool.read_arrow("measurements").num_rows == len(frame)
        gone = iter(sorted(set(frame["model"]) - {"model-0000"}))  # another model each time
        remove_ours, remove_plain = best_in_turns(
            args.repeats,
            lambda: pool.remove_models(next(gone)),
            lambda: plain_write(plain_read(root / "plain.parquet"), root / "plain-copy.parquet"),
        )
        assert pool.read_arrow("measurements").num_rows == len(frame) - args.repeats * n_samples

    rows = len(frame)
    where = "a bucket of a local S3 server (moto)" if args.s3 else "a local folder"
    print(f"rows: {rows:,} ({n_models} models x {n_samples} samples) in {where}; best of {args.repeats}")
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
    print(
        f"rename pool {rename_ours:>9.2f} s (pool rename-model: every table naming models rewritten)   "
        f"pyarrow {rename_plain:>6.2f} s (read and write the measurements)   ratio {rename_plain / rename_ours:.2f}"
    )
    print(
        f"remove pool {remove_ours:>9.2f} s (pool remove-model: every table naming models rewritten)   "
        f"pyarrow {remove_plain:>6.2f} s (read and write the measurements)   ratio {remove_plain / remove_ours:.2f}"
    )


if __name__ == "__main__":
    main()
