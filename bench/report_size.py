"""Report size and speed: 100 models x 10,000 samples, 30% measured.

    python bench/report_size.py [--models 100] [--samples 10000] [--measured 0.3]

Prints the HTML size, the time to generate it (rank with 100 bootstrap replicates + render; with the default
method pl-conditional and with pl), and the time
headless Chromium takes to load it and run its scripts (process start included, so an upper bound).
The baseline in the same process: the size of the vega scripts alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import aggregators
from harness.models import cache_dir
from harness.pool import Pool
from harness.reporting import build_report, ranking_inputs
from reports.render import render_leaderboard, vega_bundle
from tasks.importers.matrix import import_matrix


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--measured", type=float, default=0.3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ability = rng.normal(size=args.models)
    difficulty = rng.normal(size=(args.samples, 1))
    correct = (rng.random((args.samples, args.models)) < 1 / (1 + np.exp(difficulty - ability))).astype(float)
    correct[rng.random(correct.shape) >= args.measured] = np.nan
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wide = pd.DataFrame(correct, columns=[f"model-{m:03d}" for m in range(args.models)])
        wide.insert(0, "id", [f"q{i}" for i in range(args.samples)])
        wide.to_csv(root / "m.csv", index=False, na_rep="")
        pool = Pool(root / "pool", create=True)
        pool.write(import_matrix(root / "m.csv", "bench"))
        generated = {}
        for method in (aggregators.DEFAULT_METHOD, "pl"):
            start = time.perf_counter()
            scores, _ = ranking_inputs(pool, None)
            board = aggregators.rank(scores, method, 0.01, bootstrap=100, seed=0)
            html = render_leaderboard(build_report(pool, board, scores, title="bench", bootstrap=100), cache_dir())
            generated[method] = time.perf_counter() - start
        page = root / "report.html"
        page.write_text(html, encoding="utf-8")
        size = page.stat().st_size
        render = _render_seconds(page)
    print(
        f"{args.models} models x {args.samples:,} samples, {args.measured:.0%} measured "
        f"({int(np.isfinite(correct).sum()):,} measurements)"
    )
    print(
        f"report size {size / 1e6:.2f} MB (vega scripts alone {len(vega_bundle()) / 1e6:.2f} MB); "
        "generation "
        + ", ".join(f"{seconds:.1f} s with {method}" for method, seconds in generated.items())
        + f"; Chromium load + scripts {render}"
    )


def _render_seconds(page: Path) -> str:
    chromium = shutil.which("chromium")
    if not chromium:
        return "not measured (no chromium)"
    with tempfile.TemporaryDirectory() as profile:
        start = time.perf_counter()
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        return f"{time.perf_counter() - start:.1f} s"


if __name__ == "__main__":
    main()
