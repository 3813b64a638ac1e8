"""`poolbench demo`: the main job on the embedded default, end to end.

Starter tasks -> six systems, each on its own random share of the samples (sparse by design): the real
SmolLM2-135M zero-shot, 3-shot and with int8 dynamic quantization (on the full-precision model's samples,
so the two can be compared pairwise), and three model-free baselines -> Plackett-Luce ranking with
bootstrap intervals -> an HTML report -> one `compare` (int8 vs full precision) with its verdict.
A second demo reuses the pool and skips every measured pair.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pandas as pd
from rich.console import Console

import aggregators
from aggregators.paired import Comparison, compare
from harness.backends import make_backend
from harness.models import cache_dir
from harness.pool import Pool
from harness.reporting import build_report, ranking_inputs
from harness.runner import RunSpec, evaluate
from harness.schema import complete_samples
from reports.render import render_leaderboard
from tasks.starter import starter_samples

SMOLLM2 = {"pretrained": "builtin:smollm2-135m"}


@dataclass(frozen=True)
class DemoSize:
    sources: tuple[str, ...] | None
    fraction: float
    bootstrap: int


FULL = DemoSize(sources=None, fraction=0.4, bootstrap=100)
SMALL = DemoSize(sources=("starter/capitals", "starter/arithmetic"), fraction=0.35, bootstrap=20)


def systems(size: DemoSize) -> list[RunSpec]:
    """The six systems of the demo, each on its own seeded share of the samples."""
    common = RunSpec(model="", backend="", sources=size.sources, fraction=size.fraction, batch_size=16)
    return [
        replace(common, model="smollm2-135m", backend="hf", model_args=SMOLLM2),
        replace(common, model="smollm2-135m-3shot", backend="hf", model_args=SMOLLM2, num_fewshot=3),
        replace(
            common,
            model="smollm2-135m-int8",
            backend="hf",
            model_args={**SMOLLM2, "quantize": "int8"},
            subset_of="smollm2-135m",
        ),
        replace(common, model="random", backend="baseline-random", batch_size=100),
        replace(common, model="longest-choice", backend="baseline-longest", batch_size=100),
        replace(common, model="shortest-choice", backend="baseline-shortest", batch_size=100),
    ]


def run_demo(out: Path, small: bool = False, console: Console | None = None) -> tuple[pd.DataFrame, Comparison]:
    """Build or reuse `out/pool`, evaluate, rank, write `out/report.html`; the leaderboard and comparison."""
    console = console or Console(stderr=True)
    size = SMALL if small else FULL
    pool = Pool(out / "pool", create=True)
    names = [s.removeprefix("starter/") for s in size.sources] if size.sources else None
    starter = complete_samples(starter_samples(names))
    pool.write({"samples": starter})
    held = pool.read_arrow("samples", sources=size.sources, columns=["sample_id"])["sample_id"].to_pylist()
    older = len(set(held) - set(starter["sample_id"]))
    if older:
        console.print(
            f"note: {out / 'pool'} also holds {older} samples of an older poolbench's starter tasks, "
            "ranked with the rest; remove it to start afresh"
        )
    for spec in systems(size):
        build = partial(make_backend, spec.backend, spec.model_args, spec.batch_size, device=None)
        result = evaluate(pool, spec, build)
        if result.evaluated:
            console.print(f"{spec.model}: {result.evaluated} samples evaluated")
        else:
            console.print(f"{spec.model}: all {result.planned} selected samples already measured")
    scores, _ = ranking_inputs(pool, list(size.sources) if size.sources else None)
    board = aggregators.rank(scores, bootstrap=size.bootstrap, seed=0)
    report = build_report(pool, board, scores, title="poolbench demo leaderboard", bootstrap=size.bootstrap)
    (out / "report.html").write_text(render_leaderboard(report, cache_dir()), encoding="utf-8")
    verdict = compare(scores, "smollm2-135m", "smollm2-135m-int8", min_shared=20)
    return board, verdict
