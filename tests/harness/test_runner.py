"""The runner: planning, few-shot, scoring, resume after a kill, failures, and bad backends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness import plan, scoring
from harness.backends import make_backend, parse_model_args
from harness.backends.baselines import ChoiceBaseline
from harness.pool import Pool
from harness.reporting import run_settings
from harness.runner import SAMPLES_PER_CALL, RunSpec, evaluate, run
from harness.schema import METRICS, PoolError
from tasks.starter import starter_samples
from tests.harness.capitals import described_questions
from tests.lm_eval_task import write_task


@pytest.fixture
def starter_pool(tmp_path: Path) -> Pool:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals", "arithmetic"]))
    return pool


def test_multiple_choice_metrics_follow_lm_eval() -> None:
    # acc: argmax of log-likelihoods; acc_norm: argmax of ll / len(choice) (characters), as lm-eval.
    assert scoring.multiple_choice_metrics([-4.0, -6.0], ["ab", "abcdef"], 1) == {"acc": 0.0, "acc_norm": 1.0}
    assert scoring.multiple_choice_metrics([-1.0, -1.0], ["a", "b"], 0) == {"acc": 1.0, "acc_norm": 1.0}
    assert tuple(scoring.multiple_choice_metrics([-1.0, -2.0], ["a", "b"], 0)) == METRICS["multiple_choice"]
    assert scoring.choice_requests("Q:", ["x", "y"]) == [("Q:", " x"), ("Q:", " y")]


def test_continuation_samples_are_scored_by_their_targets_loglikelihood() -> None:
    """lm-eval's loglikelihood requests: the target as it is (no delimiter; LAMBADA's targets open with a space);
    acc is whether it is the greedy continuation."""
    sample = {"kind": "continuation", "choices": None, "target": json.dumps([" Paris"]), "metadata": "{}"}
    assert scoring.loglikelihood_requests(sample, "Q:", " ") == [("Q:", " Paris")]
    mc = {"kind": "multiple_choice", "choices": ["x", "y"], "target": "0"}
    assert scoring.loglikelihood_requests(mc, "Q:", " ") == scoring.choice_requests("Q:", ["x", "y"], " ")
    assert scoring.loglikelihood_requests({"kind": "generation"}, "Q:") == []
    for greedy in (True, False):
        values, response = scoring.score_response(sample, {"loglikelihoods": [-2.5], "is_greedy": [greedy]})
        assert values == {"acc": float(greedy), "loglikelihood": -2.5} and tuple(values) == METRICS["continuation"]
        assert response == {"loglikelihoods": [-2.5], "is_greedy": [greedy]}


def test_baselines_measure_continuations_by_acc_only(tmp_path: Path) -> None:
    """A baseline's scores are no log-probabilities: ranked as `loglikelihood` its random numbers in [0, 1) beat
    every model's (negative) log-likelihood."""
    pool = Pool(tmp_path / "pool", create=True)
    samples = pd.DataFrame(
        {
            "source": "cloze",
            "kind": "continuation",
            "prompt": ["The sky is", "Grass is"],
            "target": [[" blue"], [" green"]],
        }
    )
    pool.add("samples", samples.assign(metric="acc"))
    run(pool, RunSpec(model="random", backend="baseline-random"), ChoiceBaseline("random"), progress=False)
    measured = pool.measurements()
    assert set(measured["metric"]) == {"acc"} and measured["value"].tolist() == [0.0, 0.0]
    assert [json.loads(r)["is_greedy"] for r in pool.read("responses")["response"]] == [[False], [False]]


def test_plain_scoring_notes_name_the_tasks_and_stay_quiet_otherwise() -> None:
    """Generation samples of lm-eval tasks without a scoring recipe are named, by how they came; a pool's frame
    of other samples (pyarrow strings, as `Pool.samples` gives them) gives no note."""

    def frame(kinds: list[str], sources: list[str], metadata: list[str]) -> pd.DataFrame:
        columns = {"kind": kinds, "source": sources, "metadata": metadata}
        return pd.DataFrame({k: pd.Series(v, dtype="string[pyarrow]") for k, v in columns.items()})

    assert scoring.plain_scoring_notes(frame(["multiple_choice"], ["s"], ["{}"])) == []
    logged, older, scored = '{"task": "t", "doc": {}}', '{"until": ["\\n"]}', '{"until": [], "lm_eval_scoring": {}}'
    notes = scoring.plain_scoring_notes(frame(["generation"] * 4, ["b", "a", "c", "d"], [older, older, logged, scored]))
    assert [note.split(": ")[0] for note in notes] == [
        "the lm-eval task(s) a, b were added by an older poolbench",
        "the lm-eval task(s) c came from lm-eval's logs (import lm-eval-samples)",
    ]


def test_generation_metrics_hand_computed() -> None:
    assert scoring.generation_metrics("The Paris!", ["paris"]) == {"exact_match": 1.0, "f1": 1.0, "contains": 1.0}
    got = scoring.generation_metrics("Paris France", ["Paris"])
    assert tuple(got) == METRICS["generation"]
    assert got["exact_match"] == 0.0 and got["contains"] == 1.0 and got["f1"] == pytest.approx(2 / 3)
    assert scoring.extract_answer("Answer: 42\nmore", r"Answer: (\d+)") == "42"
    assert scoring.extract_answer("\n  first line \nsecond") == "first line"
    with pytest.raises(ValueError):
        scoring.generation_metrics("x", [])


def test_selection_is_per_model_seeded_and_stable(starter_pool: Pool) -> None:
    samples = starter_pool.samples()
    a = plan.select(samples, "model-a", seed=0, fraction=0.4)
    assert set(a.sample_id) == set(plan.select(samples, "model-a", seed=0, fraction=0.4).sample_id)
    assert set(a.sample_id) != set(plan.select(samples, "model-b", seed=0, fraction=0.4).sample_id)
    assert 0.3 < len(a) / len(samples) < 0.5
    # membership of a sample does not depend on the rest of the pool
    half = plan.select(samples.iloc[::2], "model-a", seed=0, fraction=0.4)
    assert set(half.sample_id) == set(a.sample_id) & set(samples.iloc[::2].sample_id)
    limited = plan.select(samples, "m", limit=7)
    assert limited.groupby("source").size().tolist() == [7, 7]
    with pytest.raises(ValueError, match="fraction"):
        plan.select(samples, "m", fraction=1.5)


def test_shards_split_a_selection_whatever_else_the_pool_holds(starter_pool: Pool) -> None:
    ids = starter_pool.samples()["sample_id"]
    held = np.array([plan.Shard(k, 3).holds(ids) for k in (1, 2, 3)])
    assert (held.sum(axis=0) == 1).all()  # disjoint, and together every sample
    assert all(0.25 < n / len(ids) < 0.42 for n in held.sum(axis=1))
    assert (plan.Shard(2, 3).holds(ids.iloc[::2]) == held[1][::2]).all()  # a sample's shard is its own
    assert (plan.Shard(1, 1).holds(ids)).all()
    assert plan.Shard.parse(" 2/3 ") == plan.Shard(2, 3) and str(plan.Shard(2, 3)) == "2/3"
    for text in ("3/2", "0/2", "2", "a/b", "1/-2", "2/3/4"):
        with pytest.raises(ValueError, match="is no shard"):
            plan.Shard.parse(text)


def test_fewshot_draws_from_the_source_without_the_sample(starter_pool: Pool) -> None:
    samples = starter_pool.samples(sources=["starter/capitals"])
    sample = samples.iloc[3]
    prompt = plan.fewshot_context(sample, samples, 3)
    context = prompt.text
    assert prompt.shots == 3 and context.endswith(sample["prompt"]) and context.count("Question:") == 4
    assert sample["prompt"] not in context[: -len(sample["prompt"])] and prompt.system == ""
    again = plan.fewshot_context(sample, samples.iloc[::-1], 3)  # independent of row order
    assert again == prompt


def test_fewshot_puts_the_task_description_once_after_the_system_instruction() -> None:
    """lm-eval's layout, by hand: instruction, fewshot delimiter, description, examples, question."""
    samples = described_questions()
    prompt = plan.fewshot_context(samples.iloc[0], samples, 1, system_instruction="Be brief.")
    assert prompt == plan.Prompt("Be brief.\n\nAbout capitals.\n\n", (("Q: Peru?", "Lima"),), "Q: France?")
    assert prompt.text == "Be brief.\n\nAbout capitals.\n\nQ: Peru? Lima\n\nQ: France?" and prompt.shots == 1
    system = {"role": "system", "content": "Be brief.\n\nAbout capitals.\n\n"}
    assert prompt.messages() == [system, {"role": "user", "content": "Q: Peru? Lima\n\nQ: France?"}]
    assert prompt.messages(multiturn=True) == [
        system,
        {"role": "user", "content": "Q: Peru?"},
        {"role": "assistant", "content": "Lima"},
        {"role": "user", "content": "Q: France?"},
    ]
    assert plan.fewshot_context(samples.iloc[0], samples, 0).text == samples["prompt"][0]
    assert plan.fewshot_context(samples.iloc[0], samples, 0, "Be brief.\n").system == "Be brief.\nAbout capitals.\n\n"


def test_baseline_run_writes_measurements_and_resumes(starter_pool: Pool) -> None:
    spec = RunSpec(model="longest", backend="baseline-longest", batch_size=50)
    first = run(starter_pool, spec, ChoiceBaseline("longest"), progress=False)
    assert (first.evaluated, first.skipped) == (200, 0)
    for table in ("measurements", "responses", "runs"):  # four batches, merged when the run ended
        assert len(starter_pool.store.segments(table)) == 1, table
    again = run(starter_pool, spec, ChoiceBaseline("longest"), progress=False)
    assert (again.evaluated, again.skipped) == (0, 200)

    def no_backend() -> ChoiceBaseline:
        raise AssertionError("a backend was built with nothing left to evaluate")

    nothing = evaluate(starter_pool, spec, no_backend, progress=False)  # no model loads for nothing
    assert nothing == replace(again, status=None) and again.status == "finished"  # it records no end either
    measured = starter_pool.measurements(models=["longest"])
    assert len(measured) == 400 and set(measured.metric) == {"acc", "acc_norm"}
    samples = starter_pool.samples().set_index("sample_id")
    for _, row in measured[measured.metric == "acc"].head(20).iterrows():
        choices = list(samples.loc[row.sample_id, "choices"])
        longest = int(np.argmax([len(c) for c in choices]))
        assert row.value == float(longest == json.loads(samples.loc[row.sample_id, "target"]))
    response = json.loads(starter_pool.read("responses").iloc[0]["response"])
    assert len(response["loglikelihoods"]) == 4 and response["truncated"] is False
    runs = starter_pool.read("runs")
    assert runs.iloc[0]["status"] == "finished" and "numpy" in json.loads(runs.iloc[0]["versions"])


class FailingBackend(ChoiceBaseline):
    """A backend that raises on its third call: the runner's failure path is what is under test."""

    def __init__(self) -> None:
        super().__init__("random")
        self.calls = 0

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        self.calls += 1
        if self.calls == 3:  # torch's messages run over several lines
            raise RuntimeError(
                "CUDA out of memory. Tried to allocate 2.00 GiB.\nSee the documentation for Memory Management"
            )
        return super().loglikelihood(requests)


def test_backend_failure_keeps_finished_batches_and_the_rerun_completes(starter_pool: Pool) -> None:
    spec = RunSpec(model="flaky", backend="baseline-random", batch_size=10)
    done = 2 * SAMPLES_PER_CALL  # the third backend call fails
    with pytest.raises(PoolError) as failure:
        run(starter_pool, spec, FailingBackend(), progress=False)
    assert str(failure.value) == (  # one line: the CLI prints the first, which keeps the way out
        f"run {spec.run_id} failed after {done} of 200 samples (RuntimeError: CUDA out of memory. Tried to allocate"
        " 2.00 GiB.); rerun the same command to resume"
    )
    assert len(starter_pool.measurements(models=["flaky"], metric="acc")) == done
    assert len(starter_pool.store.segments("measurements")) == 1  # the finished batches, merged
    failed = starter_pool.read("runs").iloc[0]
    assert failed["status"] == "failed" and "Memory Management" in json.loads(failed["config"])["error"]
    result = run(starter_pool, spec, ChoiceBaseline("random"), progress=False)
    assert (result.evaluated, result.skipped) == (200 - done, done)
    measured = starter_pool.measurements(models=["flaky"], metric="acc")
    assert len(measured) == 200 and not measured.sample_id.duplicated().any()


class Counting(ChoiceBaseline):
    """A baseline that counts what the runner asks of it, documents too (their log-likelihoods: 0, kept)."""

    unanswerable = ()
    log_probabilities = True

    def __init__(self) -> None:
        super().__init__("random")
        self.asked = {"loglikelihood_requests": 0, "rolling_requests": 0, "generations": 0}

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        self.asked["loglikelihood_requests"] += len(requests)
        return super().loglikelihood(requests)

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        self.asked["rolling_requests"] += len(texts)
        return [0.0] * len(texts)

    def generate(self, requests: list[Any]) -> list[str]:
        self.asked["generations"] += len(requests)
        return super().generate(requests)


def test_a_dry_run_says_what_the_run_asks_of_its_backend_and_loads_nothing(cli, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", "units", check=True)
    for kind, rows in (
        ("generation", [{"prompt": f"{n} + {n} =", "answer": str(2 * n)} for n in range(5)]),
        ("continuation", [{"prompt": f"Count: {n}, {n + 1},", "answer": f" {n + 2}"} for n in range(5)]),
        ("document", [{"prompt": f"Page {n}: " + "words " * n} for n in range(5)]),
    ):
        path = tmp_path / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        cli("add", "jsonl", str(path), "--source", kind, "--kind", kind, check=True)

    def dry_run(*args: str) -> dict[str, Any]:
        return json.loads(cli("run", *args, "--limit", "4", "--dry-run", "--json", check=True).stdout)

    dry_run("--model", "hf", "--model-args", "pretrained=/no/such/model", "--name", "m")
    pool = Pool(tmp_path / "pool")
    assert pool.read("runs").empty and pool.read("measurements").empty  # nothing loaded, nothing written
    planned = dry_run("--model", "baseline-random", "--name", "m")
    assert (planned["selected"], planned["measured"], planned["to_evaluate"]) == (20, 0, 20)
    assert [(s["source"], s["samples"]) for s in planned["sources"]] == [
        ("continuation", 4),
        ("document", 4),
        ("generation", 4),
        ("starter/capitals", 4),
        ("starter/units", 4),
    ]
    counting = Counting()
    run(pool, RunSpec(model="m", backend="baseline-random", limit=4), counting, progress=False)
    totals = {key: sum(source[key] for source in planned["sources"]) for key in counting.asked}
    four_choices, one_target = 2 * 4 * 4, 4  # capitals and units; the continuations
    expected = {"loglikelihood_requests": four_choices + one_target, "rolling_requests": 4, "generations": 4}
    assert totals == counting.asked == expected
    done = dry_run("--model", "baseline-random", "--name", "m")
    assert (done["selected"], done["measured"], done["to_evaluate"], done["sources"]) == (20, 20, 0, [])
    table = cli("run", "--model", "baseline-random", "--name", "m", "--fraction", "0.5", "--dry-run", check=True)
    assert "m (run run-" in table.stdout and "selected samples to evaluate" in table.stdout
    alone = cli("run", "--model", "baseline-random", "--name", "m", "--json")
    assert alone.returncode == 2 and "--json goes with --dry-run" in alone.stderr


def test_pool_runs_lists_every_run_with_its_status_values_and_error(starter_pool: Pool, cli, tmp_path: Path) -> None:
    with pytest.raises(PoolError):
        run(starter_pool, RunSpec(model="flaky", backend="baseline-random"), FailingBackend(), progress=False)
    cli("run", "--model", "baseline-longest", "--name", "longest", "--no-progress", check=True)
    cli("run", "--model", "baseline-random", "--name", "half", "--shard", "1/2", "--no-progress", check=True)
    (tmp_path / "matrix.csv").write_text("id,gpt\ns1,1\ns2,0\n")
    cli("import", "matrix", str(tmp_path / "matrix.csv"), "--source", "elsewhere", check=True)
    runs = json.loads(cli("pool", "runs", "--json", check=True).stdout)["runs"]
    assert [(r["model"], r["status"]) for r in runs] == [
        ("flaky", "failed"),
        ("longest", "finished"),
        ("half", "partial"),
        ("gpt", "imported"),
    ]  # oldest first, imported values last
    run_ids = Pool(tmp_path / "pool").read("measurements")["run_id"]
    assert [r["values"] for r in runs] == [int((run_ids == r["run"]).sum()) for r in runs]
    assert runs[0]["values"] == 2 * 2 * SAMPLES_PER_CALL  # two batches, acc and acc_norm
    assert runs[0]["error"].startswith("RuntimeError: CUDA out of memory") and runs[1]["error"] is None
    assert runs[1]["started_at"] <= runs[1]["finished_at"] and runs[3]["started_at"] is None
    assert [r["backend"] for r in runs[:3]] == ["baseline-random", "baseline-longest", "baseline-random"]
    table = cli("pool", "runs", "--model", "flaky", check=True)
    assert "flaky" in table.stdout and "longest" not in table.stdout
    assert "flaky) failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB." in table.stderr
    unknown = cli("pool", "runs", "--model", "nope")
    assert unknown.returncode == 2 and "no runs of nope in the pool" in unknown.stderr


#: A run whose backend stalls in its fourth call (after three batches were written), announcing it in a file.
STALLING_RUN = """
import sys, time
from pathlib import Path
from harness.backends.baselines import ChoiceBaseline
from harness.pool import Pool
from harness.runner import RunSpec, run

class Stalling(ChoiceBaseline):
    calls = 0

    def loglikelihood(self, requests):
        self.calls += 1
        if self.calls == 4:
            Path(sys.argv[2]).touch()
            time.sleep(600)
        return super().loglikelihood(requests)

run(Pool(sys.argv[1]), RunSpec(model="r", backend="baseline-random", batch_size=4), Stalling("random"), progress=False)
"""


def test_run_killed_with_sigkill_resumes_without_duplicates(tmp_path: Path, cli) -> None:
    cli("add", "starter", check=True)
    pool = Pool(tmp_path / "pool")
    stalled = tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", STALLING_RUN, str(pool.path), str(stalled)])
    deadline = time.time() + 300
    while not stalled.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)

    def status() -> str:
        (run,) = json.loads(cli("pool", "runs", "--json", check=True).stdout)["runs"]
        return str(run["status"])

    assert status() == "running"  # stalled, alive
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert stalled.exists(), "the run never reached its fourth batch"
    assert status() == "interrupted"  # its process is gone, its end never recorded
    assert len(pool.measurements(metric="acc")) == 3 * SAMPLES_PER_CALL  # the finished batches, nothing more
    done = cli("run", "--model", "baseline-random", "--name", "r", "--batch-size", "4", "--no-progress", check=True)
    assert f"{500 - 3 * SAMPLES_PER_CALL} samples evaluated, {3 * SAMPLES_PER_CALL} already measured" in done.stderr
    measured = pool.measurements(metric="acc")
    assert len(measured) == 500 and not measured.sample_id.duplicated().any() and status() == "finished"


def test_two_runs_at_once_both_land_each_merged(tmp_path: Path, cli) -> None:
    cli("add", "starter", check=True)
    pool = Pool(tmp_path / "pool")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "--pool", str(pool.path), "run", "--model", "baseline-random"]
            + ["--name", name, "--no-progress"],
            stderr=subprocess.DEVNULL,
        )
        for name in ("left", "right")
    ]
    assert [proc.wait(timeout=300) for proc in procs] == [0, 0]
    measured = pool.measurements(metric="acc")
    assert measured.groupby("model")["sample_id"].nunique().to_dict() == {"left": 500, "right": 500}
    assert len(measured) == 1000 and len(pool.store.segments("measurements")) == 2  # one per run


def test_shards_run_at_once_make_the_run_one_process_makes(tmp_path: Path, cli) -> None:
    whole, sharded = tmp_path / "whole", tmp_path / "pool"
    command = ["run", "--model", "baseline-random", "--name", "r", "--fraction", "0.6", "--no-progress"]
    for pool in (whole, sharded):
        cli("add", "starter", pool=pool, check=True)
    cli(*command, pool=whole, check=True)
    first = cli(*command, "--shard", "1/3", check=True)
    (status,) = Pool(sharded).read("runs")["status"]
    assert status == "partial"  # the other shards' samples are not measured yet
    assert "; the run stays partial until the other shards end" in first.stderr
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "--pool", str(sharded), *command, "--shard", f"{k}/3"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (2, 3)
    ]
    outputs = [first.stderr, *(proc.communicate(timeout=300)[1] for proc in procs)]
    assert [proc.returncode for proc in procs] == [0, 0]
    expected = Pool(whole).measurements().sort_values(["sample_id", "metric"]).reset_index(drop=True)
    got = Pool(sharded).measurements().sort_values(["sample_id", "metric"]).reset_index(drop=True)
    columns = ["sample_id", "model", "metric", "value", "run_id"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    evaluated = [int(re.search(r"(\d+) samples evaluated, 0 already measured", out)[1]) for out in outputs]
    assert sum(evaluated) == expected["sample_id"].nunique() and min(evaluated) > 0  # each sample once
    (status,) = Pool(sharded).read("runs")["status"]
    assert status == "finished"  # whichever shard ended last
    again = cli(*command, "--shard", "2/3", check=True)
    assert f"0 samples evaluated, {evaluated[1]} already measured" in again.stderr and "partial" not in again.stderr
    refused = cli(*command, "--shard", "4/3")
    assert refused.returncode == 2 and "'--shard': 4/3 is no shard: K/N with 1 <= K <= N" in refused.stderr


def test_same_subset_as_gives_the_candidate_the_base_models_samples(cli, tmp_path: Path) -> None:
    cli("add", "starter", check=True)
    common = ["--model", "baseline-random", "--fraction", "0.2", "--seed", "7", "--no-progress"]
    for name, extra in (("base", []), ("candidate", ["--same-subset-as", "base"]), ("other", [])):
        done = cli("run", "--name", name, *common, *extra, check=True)
        assert "note: no measurements" not in done.stderr
    typo = cli("run", "--name", "third", *common, "--same-subset-as", "bsae", check=True)
    assert "note: no measurements of 'bsae' yet: the samples it will get with --seed 7" in typo.stderr
    # the samples base was measured on, whatever seed and fraction it ran with (were: every sample of the pool,
    # and a fresh draw that shared a fifth of them)
    plain = cli("run", "--name", "plain", "--model", "baseline-random", "--same-subset-as", "base", check=True)
    assert "note:" not in plain.stderr
    reseeded = cli("run", "--name", "reseeded", *common[:-3], "--seed", "1", "--same-subset-as", "base", check=True)
    measured = Pool(tmp_path / "pool").measurements(metric="acc").groupby("model")["sample_id"].apply(set)
    assert measured["candidate"] == measured["base"] == measured["plain"] and 60 < len(measured["base"]) < 140
    assert measured["other"] != measured["base"]
    assert measured["reseeded"] < measured["base"] and (
        f"note: --fraction/--limit with --seed 1 select {len(measured['reseeded'])} of the "
        f"{len(measured['base'])} samples 'base' was measured on; leave them out to take all" in reseeded.stderr
    )


def test_bad_backends_fail_before_any_work(cli, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", check=True)
    unknown = cli("run", "--model", "gpt-9", "--name", "x")
    assert unknown.returncode == 2 and "available:" in unknown.stderr and "hf" in unknown.stderr
    for batch_size in ("0", "many"):
        refused = cli("run", "--model", "hf", "--name", "x", "--batch-size", batch_size)
        assert refused.returncode == 2 and f"'--batch-size': '{batch_size}' is neither a positive" in refused.stderr
    missing = cli("run", "--model", "hf", "--model-args", "pretrained=/no/such/model", "--name", "x")
    assert missing.returncode == 2 and "/no/such/model does not exist" in missing.stderr
    builtin = cli("run", "--model", "hf", "--model-args", "pretrained=builtin:smollm3", "--name", "x")
    assert builtin.returncode == 2 and "unknown built-in model 'builtin:smollm3'; built-in: builtin:smollm2-135m" in (
        builtin.stderr
    )
    bad = cli("run", "--model", "hf", "--model-args", "pretrained", "--name", "x")
    assert bad.returncode == 2 and "not key=value" in bad.stderr
    nameless = cli("run", "--model", "baseline-random", "--name", " ")
    assert nameless.returncode == 2 and "Invalid value for '--name': empty" in nameless.stderr
    pattern = cli("run", "--model", "baseline-random", "--name", "x", "--answer-pattern", "Answer: (\\d+")
    refusal = " ".join(pattern.stderr.replace("│", " ").split())  # the option parser's message, in a box
    assert pattern.returncode == 2 and (
        "Invalid value for '--answer-pattern': 'Answer: (\\\\d+' is no regular expression: missing )" in refusal
    ), refusal
    typo = cli("run", "--model", "baseline-random", "--name", "x", "--source", "starter/capital")
    assert (
        typo.returncode == 2 and "no source 'starter/capital' in the pool; its sources: starter/capitals" in typo.stderr
    )
    chatless = cli("run", "--model", "baseline-random", "--name", "x", "--apply-chat-template")
    assert chatless.returncode == 2 and "--apply-chat-template: baseline-random has no chat template" in chatless.stderr
    turns = cli("run", "--model", "baseline-random", "--name", "x", "--fewshot-as-multiturn")
    assert turns.returncode == 2 and "--fewshot-as-multiturn needs --apply-chat-template" in turns.stderr
    stats = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    assert stats["measurements"] == 0 and stats["models"] == 0
    matrix = tmp_path / "m.csv"
    matrix.write_text("id,a\nq1,1\n")
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    scored = cli("run", "--model", "baseline-random", "--name", "x", "--source", "m")
    assert scored.returncode == 2 and "nothing to evaluate" in scored.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout)["models"] == 1  # the matrix's only
    cli(
        "run", "--model", "baseline-random", "--name", " x ", "--source", "starter/capitals", "--limit", "2", check=True
    )
    assert Pool(tmp_path / "pool").measurements(sources=["starter/capitals"])["model"].unique().tolist() == ["x"]


def test_a_chat_endpoint_is_left_the_generation_samples(cli, tmp_path: Path) -> None:
    """A chat endpoint gives no log-probabilities of given text: its run leaves out the samples scored from them
    and says so, or refuses when nothing else is selected, before a run is recorded (was: the run failed on its
    first batch with lm-eval's NotImplementedError, was recorded as failed, and said "rerun to resume"); a
    rerun once the rest is measured finds nothing to do."""
    cli("add", "starter", "capitals", check=True)
    server = "base_url=http://127.0.0.1:9/v1/chat/completions,model=m,max_retries=1"  # nothing listens there
    endpoint = ["run", "--model", "openai-chat-completions", "--model-args", server, "--name", "chat", "--no-progress"]
    refused = cli(*endpoint)
    assert refused.returncode == 2 and (
        "nothing to evaluate: the 100 samples selected are multiple-choice samples, and openai-chat-completions "
        "gives no log-probabilities of given text" in refused.stderr
    )
    pool = Pool(tmp_path / "pool")
    assert pool.read("runs").empty
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"prompt": f"{n} + {n} =", "answer": str(2 * n)}) + "\n" for n in range(3)))
    cli("add", "jsonl", str(questions), "--source", "sums", "--kind", "generation", check=True)
    left_out = "100 multiple-choice samples left out: openai-chat-completions gives no log-probabilities"
    mixed = cli(*endpoint)
    assert left_out in mixed.stderr
    assert mixed.returncode == 2 and "failed after 0 of 3 samples (ConnectionError" in mixed.stderr, mixed.stderr
    assert "Requesting API" not in mixed.stderr  # lm-eval's own bar, which --no-progress silences too
    (run_id,) = pool.read("runs")["run_id"].unique()  # as if the server had answered: the sums measured
    sums = pool.samples(sources="sums")["sample_id"]
    pool.add("measurements", pd.DataFrame({"sample_id": sums, "model": "chat", "run_id": run_id, "value": 1.0}))
    rerun = cli(*endpoint, check=True)
    assert left_out in rerun.stderr and "chat: 0 samples evaluated, 3 already measured" in rerun.stderr


def test_model_args_parsing() -> None:
    assert parse_model_args("pretrained=a/b, dtype=float32") == {"pretrained": "a/b", "dtype": "float32"}
    with pytest.raises(PoolError):
        make_backend("baseline-best", {})


def test_a_system_instruction_is_part_of_the_runs_configuration(cli, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", check=True)
    args = ["run", "--model", "baseline-random", "--name", "b", "--limit", "3", "--no-progress"]
    assert "3 samples evaluated, 0 already" in cli(*args, check=True).stderr
    instructed = [*args, "--system-instruction", "Be brief."]
    assert "3 samples evaluated, 0 already" in cli(*instructed, check=True).stderr
    assert "0 samples evaluated, 3 already" in cli(*instructed, check=True).stderr
    configs = [json.loads(c) for c in Pool(tmp_path / "pool").read("runs")["config"]]
    assert {c.get("system_instruction") for c in configs} == {None, "Be brief."}


def test_examples_as_turns_are_part_of_a_run_only_where_they_change_its_prompts() -> None:
    def spec(**options: Any) -> RunSpec:
        return RunSpec(model="m", backend="hf", chat_template=True, **options)

    assert spec(fewshot_as_multiturn=True).run_id == spec().run_id  # no examples: the same prompts
    assert spec(num_fewshot=3, fewshot_as_multiturn=True).run_id != spec(num_fewshot=3).run_id
    assert run_settings(asdict(spec(fewshot_as_multiturn=True))) == "0-shot, chat template"
    assert run_settings(asdict(spec(num_fewshot=3))) == "3-shot, chat template"
    turns = run_settings(asdict(spec(num_fewshot=3, fewshot_as_multiturn=True)))
    assert turns == "3-shot, chat template, examples as turns"
    with pytest.raises(PoolError, match="needs --apply-chat-template"):
        RunSpec(model="m", backend="hf", fewshot_as_multiturn=True)


def test_chat_runs_are_refused_before_they_start_where_no_template_fits(cli, tmp_path: Path) -> None:
    """A random-weight model with SmolLM2's tokenizer and chat template: a task added with its few-shot
    examples inside the prompts is refused with them as turns (lm-eval's default with a template); a task
    whose answers open with lm-eval's gen_prefix runs, unless OpenAI's own chat API would have to continue it
    (a server's chat endpoint continues it: tests/vllm) or the pool holds no question beside it (an older
    poolbench added it); without the template file, every task is refused."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.models import smollm2_path
    from tasks.lm_eval_tasks import write_lm_eval_task

    folder = tmp_path / "tiny"
    config = AutoConfig.from_pretrained(smollm2_path())
    config.update({"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 128, "head_dim": 32})
    config.update({"num_attention_heads": 2, "num_key_value_heads": 1})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(smollm2_path() / name, folder / name)
    tasks = write_lm_eval_task(starter_samples(["capitals"]).head(3), tmp_path / "tasks", "prefixed")
    (tasks / "prefixed.yaml").write_text((tasks / "prefixed.yaml").read_text() + 'gen_prefix: "Answer:"\n')
    cli("add", "lm-eval", "prefixed", "--include-path", str(tasks), check=True)
    write_lm_eval_task(starter_samples(["capitals"]).head(3), tmp_path / "tasks", "baked")
    cli("add", "lm-eval", "baked", "--include-path", str(tmp_path / "tasks"), "--num-fewshot", "1", check=True)
    cli("add", "starter", "capitals", check=True)
    older = {"gen_prefix": "Answer:"}  # what an older poolbench recorded: the prefix, not the question
    Pool(tmp_path / "pool").add(
        "samples",
        pd.DataFrame({"source": "older", "kind": "multiple_choice", "prompt": ["Q: 1+1?\nAnswer:"]}).assign(
            choices=[["2", "3"]], target=[0], metadata=[older]
        ),
    )
    args = ["run", "--model", "hf", "--model-args", f"pretrained={folder}", "--name", "x", "--no-progress"]
    for sources, problem in (
        (["baked"], "the lm-eval task(s) baked were added with their few-shot examples inside the prompt"),
        (["older"], "the lm-eval task(s) older open the answer with a gen_prefix but were added by an older"),
    ):
        selected = [option for source in sources for option in ("--source", source)]
        refused = cli(*args, *selected, "--apply-chat-template")
        assert refused.returncode == 2 and problem in refused.stderr
    data = tmp_path / "sums.jsonl"
    data.write_text(json.dumps({"question": "2 + 2?", "answer": "4"}) + "\n")
    write_task(tasks, "prefixed_sums", data, "generate_until", 'doc_to_target: "{{answer}}"\ngen_prefix: "The sum is"')
    cli("add", "lm-eval", "prefixed_sums", "--include-path", str(tasks), check=True)
    endpoint = ["--model", "openai-chat-completions", "--model-args", "model=gpt-4o-mini"]  # OpenAI's own API
    api = cli("run", *endpoint, "--name", "api", "--source", "prefixed_sums", "--apply-chat-template")
    assert api.returncode == 2 and "gen_prefix, which OpenAI's own API cannot continue" in api.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout)["models"] == 0
    chat_options = ["--source", "prefixed", "--source", "baked", "--apply-chat-template", "--no-fewshot-as-multiturn"]
    cli(*args, *chat_options, check=True)  # baked examples stay in the one user message; the prefix continues
    (folder / "chat_template.jinja").unlink()
    chat = cli(*args, "--source", "starter/capitals", "--limit", "2", "--apply-chat-template")
    assert chat.returncode == 2 and "hf model has no chat template: Cannot use chat template" in chat.stderr
    assert len(Pool(tmp_path / "pool").read("runs").drop_duplicates("run_id")) == 1
    cli(*args, "--limit", "2", check=True)  # all five tasks without the option
    measured = json.loads(cli("pool", "stats", "--json", check=True).stdout)["measurements"]
    assert measured == (3 + 3) * 2 + 7 * 2 + len(METRICS["generation"])
