"""Importing an inspect_ai log of 10,000 samples vs reading it with inspect's own `read_eval_log`, in one process.

Also poolbench's own part of the import (the conversion, with inspect's read done before). The log is written
by inspect itself: an eval of 100 samples on its mockllm provider, whose samples (and their reduced scores) are
then copied under new ids to `--samples` and written with `write_eval_log`.

    python bench/inspect_import.py [--samples 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import inspect_ai.log as inspect_log_api
from inspect_ai import Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate

from harness.pool import Pool
from tasks.importers.inspect_logs import import_inspect_log


def answer(text: str) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm", content=text)
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # else inspect fetches a tokenizer
    return output


def write_log(folder: Path, n: int) -> Path:
    """A log of `n` samples: inspect's log of 100, its samples copied under new ids."""
    base = 100
    dataset = MemoryDataset([Sample(id=i, input=f"What is {i} + {i}?", target=str(2 * i)) for i in range(base)])
    model = get_model("mockllm/bench", custom_outputs=[answer(str(2 * i + i % 3)) for i in range(base)])
    task = Task(name="sums", dataset=dataset, solver=generate(), scorer=[match(), includes()])
    [log] = eval(task, model=model, log_dir=str(folder), display="none")
    log = read_eval_log(log.location)
    samples, reductions = list(log.samples or []), log.reductions or []
    copies = range(1, -(-n // base))
    log.samples = samples + [
        s.model_copy(update={"id": s.id + base * c, "input": f"{s.input} ({c})"}) for c in copies for s in samples
    ]
    for reduction in reductions:
        scores = list(reduction.samples)
        reduction.samples = scores + [
            s.model_copy(update={"sample_id": s.sample_id + base * c}) for c in copies for s in scores
        ]
    path = folder / "big.eval"
    write_eval_log(log, str(path))
    return path


def _own_work(path: Path) -> float:
    """Seconds `import_inspect_log` takes past inspect's read: with `read_eval_log` handing over a log read before."""
    log = inspect_log_api.read_eval_log(str(path))
    read = inspect_log_api.read_eval_log
    inspect_log_api.read_eval_log = lambda *args, **kwargs: log
    try:
        start = time.perf_counter()
        import_inspect_log(path)
        return time.perf_counter() - start
    finally:
        inspect_log_api.read_eval_log = read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_log(Path(tmp), args.samples)
        size = path.stat().st_size
        reads, imports = [], []
        for _ in range(args.repeats):  # alternately, the best of each: inspect's read alone varies by 20%
            start = time.perf_counter()
            read_eval_log(str(path))
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            batch = import_inspect_log(path)
            imports.append(time.perf_counter() - start)
        read, imported = min(reads), min(imports)
        own = min(_own_work(path) for _ in range(args.repeats))
        start = time.perf_counter()
        Pool(Path(tmp) / "pool", create=True).write(batch)
        written = time.perf_counter() - start
    n = len(batch["samples"])
    print(f"{n:,} samples, {len(batch['measurements']):,} measurements ({size / 1e6:.1f} MB log)")
    print(f"inspect read_eval_log:      {read:6.2f} s  (best of {args.repeats})")
    print(
        f"import_inspect_log:         {imported:6.2f} s  ({imported / read:.2f}x read_eval_log, best of {args.repeats})"
    )
    print(f"  of it, poolbench's own:    {own:6.2f} s  (the log already read; best of {args.repeats})")
    print(f"Pool.write:                 {written:6.2f} s")


if __name__ == "__main__":
    main()
