"""Importing a 5,000-model x 200-sample result matrix (1,000,000 measurements) vs writing the same long
DataFrame straight to Parquet, in one process.

    python bench/ingest.py [--models 5000] [--samples 200]
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

from harness.pool import Pool
from tasks.importers.matrix import import_matrix


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = (rng.random((args.samples, args.models)) < 0.6).astype(int)
    wide = pd.DataFrame(values, columns=[f"model-{m:05d}" for m in range(args.models)])
    wide.insert(0, "id", [f"q{i}" for i in range(args.samples)])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wide.to_csv(root / "matrix.csv", index=False)
        start = time.perf_counter()
        batch = import_matrix(root / "matrix.csv", "bench")
        parsed = time.perf_counter()
        Pool(root / "pool", create=True).write(batch)
        done = time.perf_counter()
        n = len(batch["measurements"])
        plain_start = time.perf_counter()
        pq.write_table(pa.Table.from_pandas(batch["measurements"], preserve_index=False), root / "plain.parquet")
        plain = time.perf_counter() - plain_start
        wide_start = time.perf_counter()
        pq.write_table(pa.Table.from_pandas(wide, preserve_index=False), root / "wide.parquet")
        wide_write = time.perf_counter() - wide_start
        naive_start = time.perf_counter()  # the import without poolbench: read the CSV, write it to Parquet
        read_back = pd.read_csv(root / "matrix.csv")
        pq.write_table(pa.Table.from_pandas(read_back, preserve_index=False), root / "naive.parquet")
        naive = time.perf_counter() - naive_start
    total, parse, write = done - start, parsed - start, done - parsed
    print(
        f"import matrix ({args.models:,} models x {args.samples:,} samples): {n:,} measurements in {total:.2f} s "
        f"= {n / total:,.0f} measurements/s (CSV parse + reshape {parse:.2f} s, validated pool write {write:.2f} s)"
    )
    print(
        f"plain pyarrow write of the same measurements: {plain:.2f} s; "
        f"pool write / plain write = {write / plain:.2f}x, whole import / plain write = {total / plain:.2f}x"
    )
    print(
        f"plain pyarrow write of the wide matrix DataFrame itself: {wide_write:.2f} s; "
        f"whole import / that = {total / wide_write:.2f}x"
    )
    print(
        f"naive import (pandas.read_csv of the file + pyarrow write of that DataFrame): {naive:.2f} s; "
        f"whole import / naive import = {total / naive:.2f}x"
    )


if __name__ == "__main__":
    main()
