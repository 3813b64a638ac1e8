"""The hf backend on a CUDA GPU: its scores against lm-eval's own there and against the CPU's, and its speed.

    python bench/cuda_check.py [--samples 500] [--batch-size 32] [--device cuda]

SmolLM2-135M-Instruct on the starter questions (five four-choice tasks), each a `poolbench run` in one pool:
  * on the GPU, float32, `share_prefix=false`: every (context, choice) pair through lm-eval's own
    `HFLM.loglikelihood` (the oracle and the baseline of the timing);
  * on the GPU: float32 with each question's context computed once (the hf default), both ways with
    `--batch-size auto` (lm-eval's search on its path, the shared prefix's halving on its), bfloat16 both ways;
  * on the CPU, float32, both ways;
  * `--multiple-choice letter` (the letter generated) on the GPU and on the CPU, a fifth of the questions;
  * the command line, `poolbench run` with no `--device`, which must pick the GPU.
Each model is loaded and warmed up (two questions of each source) before its timing starts. Prints each run's
seconds, its speed against the oracle's, its accuracy, its log-likelihoods' largest relative difference from the
oracle's and the questions whose verdict (acc) differs; exits 1 when a float32 run strays further than the test
suite allows a shared prefix on the CPU (5e-5), a float32 verdict or letter differs, or a run did not run where
it was sent. `--device cpu` dry-runs it without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.backends import AUTO, make_backend  # noqa: E402
from harness.models import smollm2_path  # noqa: E402
from harness.pool import Pool  # noqa: E402
from harness.runner import RunSpec, run  # noqa: E402
from harness.schema import complete_samples  # noqa: E402
from tasks.starter import starter_samples  # noqa: E402

#: The largest relative difference of a float32 log-likelihood from lm-eval's that the test suite allows a
#: shared prefix on the CPU (it sums the same terms in another order).
FLOAT32_TOLERANCE = 5e-5
ORACLE = "lm-eval per pair, float32"


def timed_run(pool: Pool, spec: RunSpec, device: str) -> tuple[float, str]:
    """Seconds of `run` and the device the backend reports. The model is loaded, and has run on two questions
    of each source (as another model: CUDA loads its kernels and libraries at their first use), before."""
    backend = make_backend(spec.backend, spec.model_args, spec.batch_size, device=device)
    warm_up = replace(spec, model=f"{spec.model}, warm-up", fraction=None, limit=2, subset_of=None)
    run(pool, warm_up, backend, progress=False)
    start = time.perf_counter()
    run(pool, spec, backend, progress=False)
    return time.perf_counter() - start, str(backend.describe()["device"])


def responses_of(pool: Pool, model: str) -> pd.Series:
    """A run's responses (JSON objects), by sample."""
    responses = pool.read("responses")
    return responses[responses["model"] == model].set_index("sample_id")["response"].map(json.loads).sort_index()


def against(pool: Pool, model: str, oracle: str) -> dict[str, float]:
    """A run's accuracy, its log-likelihoods' largest relative difference from the oracle run's, and how
    many of its verdicts (acc) differ from the oracle's."""
    measured = pool.measurements()
    acc = measured[measured["metric"] == "acc"].pivot(index="sample_id", columns="model", values="value")
    ours, theirs = responses_of(pool, model), responses_of(pool, oracle)
    mine = np.concatenate([r["loglikelihoods"] for r in ours])
    reference = np.concatenate([r["loglikelihoods"] for r in theirs[ours.index]])
    relative = np.abs(mine - reference) / np.abs(reference)
    return {
        "accuracy": float(acc[model].mean()),
        "relative": float(relative.max()),
        "differ": int((acc[model] != acc[oracle]).sum()),
    }


def cli_run(pool_dir: Path, limit: int) -> dict[str, Any]:
    """`poolbench run --limit LIMIT` (per source) with no `--device`, in a process of its own; where and how it
    ran, as its run recorded (`backend_info`)."""
    command = [sys.executable, "-m", "harness.cli", "--pool", str(pool_dir), "run", "--model", "hf", "--name", "cli"]
    command += ["--model-args", "pretrained=builtin:smollm2-135m", "--limit", str(limit), "--no-progress"]
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1])
    runs = Pool(pool_dir).read("runs")
    return dict(json.loads(runs[runs["model"] == "cli"]["config"].iloc[-1])["backend_info"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run this on a GPU machine (or --device cpu for a dry run)")
        return 2
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none (dry run)"
    print(f"torch {torch.__version__}, GPU: {gpu}, CPU threads: {torch.get_num_threads()}")
    weights = {"pretrained": str(smollm2_path())}
    per_pair = {**weights, "dtype": "float32", "share_prefix": "false"}
    batch = args.batch_size
    runs = {  # name: (device, model args, float32, batch size)
        ORACLE: (args.device, per_pair, True, batch),
        "shared prefix, float32": (args.device, {**weights, "dtype": "float32"}, True, batch),
        "shared prefix, float32, auto": (args.device, {**weights, "dtype": "float32"}, True, AUTO),
        "lm-eval per pair, float32, auto": (args.device, per_pair, True, AUTO),
        "shared prefix, bfloat16": (args.device, {**weights, "dtype": "bfloat16"}, False, batch),
        "lm-eval per pair, bfloat16": (args.device, {**per_pair, "dtype": "bfloat16"}, False, batch),
        "lm-eval per pair, float32, CPU": ("cpu", per_pair, True, batch),
        "shared prefix, float32, CPU": ("cpu", {**weights, "dtype": "float32"}, True, batch),
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        pool = Pool(Path(tmp) / "pool", create=True)
        pool.add("samples", complete_samples(starter_samples().head(args.samples)))
        print(f"\n{'run':<32} {'device':<8} {'seconds':>8} {'speed':>6} {'acc':>6} {'max rel diff':>12} differ")
        oracle_seconds = 0.0
        for name, (device, model_args, exact, batch_size) in runs.items():
            spec = RunSpec(model=name, backend="hf", model_args=model_args, batch_size=batch_size)
            seconds, reported = timed_run(pool, spec, device)
            oracle_seconds = oracle_seconds or seconds
            found = against(pool, name, ORACLE)
            print(
                f"{name:<32} {reported:<8} {seconds:>8.2f} {oracle_seconds / seconds:>5.2f}x {found['accuracy']:>6.3f} "
                f"{found['relative']:>12.2e} {found['differ']}"
            )
            if exact and (found["relative"] > FLOAT32_TOLERANCE or found["differ"]):
                failures.append(f"{name}: {found['relative']:.2e} from lm-eval, {found['differ']} verdicts differ")
            if not reported.startswith(device):
                failures.append(f"{name}: ran on {reported}, not {device}")
        letters = {}
        for device in dict.fromkeys((args.device, "cpu")):
            spec = RunSpec(
                model=f"letters, {device}",
                backend="hf",
                model_args={**weights, "dtype": "float32"},
                batch_size=args.batch_size,
                fraction=0.2,
                subset_of=None if device == args.device else f"letters, {args.device}",  # the same questions
                multiple_choice="letter",
                max_gen_tokens=4,
            )
            seconds, _ = timed_run(pool, spec, device)
            letters[device] = responses_of(pool, spec.model).map(lambda response: response["text"])
            print(f"{spec.model:<32} {device:<8} {seconds:>8.2f}")
        same = letters[args.device].equals(letters["cpu"])
        print(f"letters generated alike on {args.device} and the CPU: {same} ({len(letters['cpu'])} questions)")
        if not same:
            failures.append("the letters generated differ between the GPU and the CPU")
        described = cli_run(Path(tmp) / "pool", limit=4)
        print(f"poolbench run with no --device ran on: {described['device']}, {described['dtype']}")
        if not str(described["device"]).startswith(args.device):
            failures.append(f"the command line ran on {described['device']}")
    print("\n" + ("\n".join(f"FAILED: {failure}" for failure in failures) or "all checks passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
