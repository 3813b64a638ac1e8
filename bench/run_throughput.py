"""Scoring throughput: `poolbench run` vs lm-eval's own evaluator, SmolLM2-135M, CPU.

    python bench/run_throughput.py [--samples 200] [--num-fewshot 0] [--batch-size 8] [--documents]

The same four-choice samples (starter capitals and units, as a local lm-eval task; with `--documents`, pages of
twenty starter questions each, as a loglikelihood_rolling task scored in 128-token windows) are scored by
  * lm-eval: `simple_evaluate` with an `HFLM` built beforehand (the baseline),
  * poolbench, each question's context computed once (`share_prefix`, the default for hf),
  * poolbench with `share_prefix=false` (every pair through lm-eval's `loglikelihood`).
Each runs in a process of its own (model loading not timed) so that its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("lm-eval", "poolbench", "poolbench share_prefix=false")
#: Of `--documents`: questions per page, and the window (tokens) that cuts each page into several.
PAGE_QUESTIONS, WINDOW = 20, 128
DOCUMENT_TASK = """task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: page
metric_list: [{{metric: word_perplexity}}]
"""


def write_document_task(questions: list[str], pages: int, folder: Path, name: str) -> Path:
    """`pages` pages of PAGE_QUESTIONS questions each (drawn with the page's number as the seed: no two pages
    alike, which the pool would keep once) as a local loglikelihood_rolling task in `folder`."""
    folder.mkdir(parents=True)
    data = folder / f"{name}.jsonl"
    texts = ["\n\n".join(random.Random(page).sample(questions, PAGE_QUESTIONS)) for page in range(pages)]
    data.write_text("".join(json.dumps({"page": text}) + "\n" for text in texts))
    (folder / f"{name}.yaml").write_text(DOCUMENT_TASK.format(name=name, data=data))
    return folder


def measure(mode: str, samples: int, fewshot: int, batch_size: int, documents: bool) -> dict[str, float]:
    """Run one mode in this process; return seconds, samples/s and peak RSS (GB)."""
    import pandas as pd

    from harness.backends import make_backend
    from harness.models import smollm2_path
    from harness.pool import Pool
    from harness.runner import RunSpec, run
    from tasks.lm_eval_tasks import load_lm_eval_tasks, write_lm_eval_task
    from tasks.starter import starter_samples

    rows = pd.concat([starter_samples(["capitals"]), starter_samples(["units"])])
    window = {"max_length": WINDOW} if documents else {}
    with tempfile.TemporaryDirectory() as tmp:
        if documents:
            questions = list(starter_samples()["prompt"])  # all five tasks' (500)
            folder = write_document_task(questions, samples, Path(tmp) / "tasks", "throughput")
        else:
            folder = write_lm_eval_task(rows.head(samples), Path(tmp) / "tasks", "throughput")
        if mode == "lm-eval":
            import lm_eval
            from lm_eval.models.huggingface import HFLM
            from lm_eval.tasks import TaskManager

            lm = HFLM(pretrained=str(smollm2_path()), device="cpu", batch_size=batch_size, **window)
            manager = TaskManager(include_path=str(folder), include_defaults=False)
            start = time.perf_counter()
            lm_eval.simple_evaluate(  # no bootstrap of stderrs (a perplexity's would take 100,000 rounds)
                model=lm, tasks=["throughput"], task_manager=manager, num_fewshot=fewshot, bootstrap_iters=0
            )
        else:
            pool = Pool(Path(tmp) / "pool", create=True)
            pool.add("samples", load_lm_eval_tasks(["throughput"], include_path=str(folder)))
            args = {"pretrained": "builtin:smollm2-135m", **{k: str(v) for k, v in window.items()}}
            if "share_prefix=false" in mode:
                args["share_prefix"] = "false"
            spec = RunSpec(model="smollm2", backend="hf", model_args=args, batch_size=batch_size, num_fewshot=fewshot)
            backend = make_backend("hf", args, batch_size=batch_size, device="cpu")
            start = time.perf_counter()
            run(pool, spec, backend, progress=False)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {"seconds": seconds, "samples_per_s": samples / seconds, "peak_gb": peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--num-fewshot", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--documents", action="store_true", help="Pages scored by rolling log-likelihood.")
    parser.add_argument("--only", choices=MODES, help="Run one mode in this process and print its JSON.")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args.samples, args.num_fewshot, args.batch_size, args.documents)))
        return
    results = {}
    for mode in MODES[:2] if args.documents else MODES:  # no shared prefix to turn off for documents
        command = [sys.executable, __file__, "--only", mode, "--samples", str(args.samples)]
        command += ["--num-fewshot", str(args.num_fewshot), "--batch-size", str(args.batch_size)]
        command += ["--documents"] if args.documents else []
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["lm-eval"]
    what = (
        f"{args.samples} pages of {PAGE_QUESTIONS} questions in {WINDOW}-token windows"
        if args.documents
        else f"{args.samples} four-choice samples, {args.num_fewshot}-shot"
    )
    print(f"{what}, batch size {args.batch_size}, CPU:")
    for mode, r in results.items():
        print(
            f"  {mode:30s} {r['samples_per_s']:6.2f} samples/s ({r['seconds']:.1f} s), ratio "
            f"{r['samples_per_s'] / base['samples_per_s']:.2f}; peak RSS {r['peak_gb']:.2f} GB "
            f"({r['peak_gb'] / base['peak_gb']:.2f}x lm-eval's)"
        )


if __name__ == "__main__":
    main()
