"""pl-conditional's fit time, against `pl` (the choice-set encoding) on the same data in the same process.

    python bench/conditional_speed.py

1. ChemBench: 22 models x 2,854 questions, complete (../shared/data).
2. 100 models x 100,000 binary Rasch samples, each model measured on a random 30%.
3. A dense binary 4,280-model x 145-sample matrix (Open LLM Leaderboard ARC's shape).
4. The same with 40 bootstrap replicates, on all cores.
Each line: the whole `aggregators.rank` call (DataFrame in, scores out), alpha 0.01. Line 5: one evaluation of
the objective on 2.'s sets, best of 7, by the direct recursion (small sets' default) and by the ratios. The first
line times a tiny call first: it loads pl-conditional's compiled kernels (numba's cache; it compiles them on
the first run after an install or a change), which every process pays once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_in_turns

import aggregators
from aggregators import conditional

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def sparse_rasch(n_models: int, n_samples: int, measured: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ability = rng.normal(0, 1, n_models)
    difficulty = rng.normal(0, 1.5, n_samples)
    sample, model = np.nonzero(rng.random((n_samples, n_models)) < measured)
    correct = rng.random(len(sample)) < 1 / (1 + np.exp(difficulty[sample] - ability[model]))
    return pd.DataFrame({"sample_id": sample, "model": model, "value": correct.astype(float)})


def chembench() -> pd.DataFrame:
    wide = pd.read_csv(SHARED / "chembench_binary" / "binary_matrix.csv", index_col=0)
    frame = wide.stack().rename("value").reset_index()
    frame.columns = ["sample_id", "model", "value"]
    return frame


def seconds(frame: pd.DataFrame, method: str, bootstrap: int = 0) -> float:
    start = time.perf_counter()
    aggregators.rank(frame, method=method, alpha=0.01, bootstrap=bootstrap)
    return time.perf_counter() - start


def objective_seconds(frame: pd.DataFrame) -> tuple[float, float]:
    """Best seconds of one objective evaluation on `frame`'s sets: by the direct recursion where the layout
    chooses it, and with every set sent to the ratios."""
    models, samples = np.unique(frame["model"]), np.unique(frame["sample_id"])
    binary = conditional.from_measurements(frame, models, samples)
    layout, ratios = conditional.Layout(binary), conditional.Layout(binary)
    ratios.direct[:] = False
    theta = np.random.default_rng(0).normal(0, 1, len(models))
    direct_value, ratio_value = conditional.objective(theta, layout)[0], conditional.objective(theta, ratios)[0]
    assert abs(direct_value - ratio_value) <= 1e-9 * abs(ratio_value)
    return best_in_turns(7, lambda: conditional.objective(theta, layout), lambda: conditional.objective(theta, ratios))


def main() -> None:
    start = time.perf_counter()
    aggregators.rank(sparse_rasch(5, 20, 1.0), method="pl-conditional")
    print(
        f"[0] first pl-conditional call in this process (loads the compiled kernels): {time.perf_counter() - start:.2f} s"
    )
    cases = [
        ("[1] ChemBench 22 x 2,854, complete", chembench, 0),
        ("[2] 100 x 100,000 binary, 30% measured", lambda: sparse_rasch(100, 100_000, 0.3), 0),
        ("[3] dense binary 4,280 x 145", lambda: sparse_rasch(4280, 145, 1.0), 0),
        ("[4] [3] with 40 bootstrap replicates (all cores)", lambda: sparse_rasch(4280, 145, 1.0), 40),
    ]
    for name, build, bootstrap in cases:
        frame = build()
        exact, pl = seconds(frame, "pl-conditional", bootstrap), seconds(frame, "pl", bootstrap)
        print(
            f"{name} ({len(frame):,} measurements): pl-conditional {exact:.2f} s, pl {pl:.2f} s, "
            f"ratio {exact / pl:.1f}x"
        )
    direct, ratios = objective_seconds(sparse_rasch(100, 100_000, 0.3))
    print(
        f"[5] one objective evaluation of [2]'s sets: direct recursion {direct * 1000:.0f} ms, ratios "
        f"{ratios * 1000:.0f} ms, ratio {ratios / direct:.1f}x"
    )


if __name__ == "__main__":
    main()
