"""`poolbench`: the command line, and the composition root that wires harness, tasks, aggregators and reports.

Every command that reports takes `--json` and then prints exactly one JSON document on stdout; progress and
logs go to stderr. Errors: one line on stderr, exit code 2, pool unchanged.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from harness.models import cache_dir
from harness.pool import Pool
from harness.schema import TABLES, PoolError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__.splitlines()[0]
)
pool_app = typer.Typer(no_args_is_help=True, help="Create, inspect and maintain a pool directory.")
app.add_typer(pool_app, name="pool")
stderr = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class _State:
    pool_dir: Path = Path("pool")


def fail(message: str) -> None:
    """Exit with code 2 after one line on stderr."""
    print(f"poolbench: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def user_errors(func: F) -> F:
    """Turn the errors a user can cause into one stderr line and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PoolError, ValueError, FileNotFoundError, KeyError) as err:
            message = str(err) if not isinstance(err, KeyError) else f"missing {err}"
            fail(message.strip().splitlines()[0] if message.strip() else type(err).__name__)

    return wrapper  # type: ignore[return-value]


def open_pool(create: bool = False) -> Pool:
    """The pool named by --pool / $POOLBENCH_POOL / ./pool."""
    return Pool(_State.pool_dir, create=create)


def emit_json(document: object) -> None:
    """The one JSON document a `--json` command prints."""
    sys.stdout.write(json.dumps(document, indent=2, default=float) + "\n")


@app.callback()
def main_options(
    pool: Annotated[
        Path | None, typer.Option("--pool", help="Pool directory [default: $POOLBENCH_POOL, else ./pool].")
    ] = None,
) -> None:
    """poolbench: rank language models from sparse, sample-level measurements."""
    _State.pool_dir = pool or Path(os.environ.get("POOLBENCH_POOL") or "pool")


# --------------------------------------------------------------------- pool
@pool_app.command("init")
@user_errors
def pool_init() -> None:
    """Create an empty pool directory (a no-op if it exists)."""
    pool = open_pool(create=True)
    stderr.print(f"pool ready at {pool.path}")


@pool_app.command("stats")
@user_errors
def pool_stats(as_json: JsonOpt = False) -> None:
    """Counts of samples, models, measurements and comparisons, per source."""
    stats = open_pool().stats()
    if as_json:
        emit_json(stats)
        return
    for key in ("samples", "models", "measurements", "comparisons"):
        print(f"{key:>13}: {stats[key]:,}")
    for source, counts in stats["sources"].items():  # type: ignore[attr-defined]
        print(f"  {source}: {counts['samples']:,} samples, {counts['measurements']:,} measurements")


@pool_app.command("compact")
@user_errors
def pool_compact() -> None:
    """Merge each table's segments into one (same logical content)."""
    pool = open_pool()
    for table in TABLES:
        pool.store.compact(table)
    stderr.print("compacted")


@pool_app.command("export")
@user_errors
def pool_export(
    out: Annotated[Path, typer.Argument(help="Directory for one Parquet file per table.")],
) -> None:
    """Write one Parquet file per table (the logical content) to OUT."""
    import pyarrow.parquet as pq

    pool = open_pool()
    out.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        pq.write_table(pool.store.read(table), out / f"{table}.parquet")
    stderr.print(f"exported {len(TABLES)} tables to {out}")


@pool_app.command("check")
@user_errors
def pool_check(
    quarantine: Annotated[bool, typer.Option(help="Move unreadable segments to quarantine/.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Read every segment; name the unreadable ones (exit 1 if any remain in place)."""
    problems = open_pool().store.check(quarantine=quarantine)
    if as_json:
        emit_json(
            {
                "problems": [{"path": str(p.path), "error": p.error} for p in problems],
                "quarantined": quarantine,
            }
        )
    for problem in problems:
        action = "quarantined" if quarantine else "unreadable"
        print(f"{action}: {problem.path}: {problem.error}", file=sys.stderr)
    if problems and not quarantine:
        raise typer.Exit(1)
    if not problems:
        stderr.print("all segments readable")


# --------------------------------------------------------------------- add
add_app = typer.Typer(no_args_is_help=True, help="Add samples from datasets: local files, starter tasks, lm-eval, HF.")
app.add_typer(add_app, name="add")
KindOpt = Annotated[str, typer.Option(help="multiple_choice or generation.")]
IdField = Annotated[str, typer.Option("--id-field", help="Field of the sample's source id.")]
QuestionField = Annotated[str | None, typer.Option("--question-field", help="Field of the question or prompt.")]
ChoicesField = Annotated[str, typer.Option("--choices-field", help="Field of the choices (multiple choice).")]
AnswerField = Annotated[str, typer.Option("--answer-field", help="Field of the answer (index, letter or text).")]
TemplateOpt = Annotated[str | None, typer.Option(help="jinja2 template of the prompt over the row's fields.")]


def _add_local(
    fmt: str,
    path: Path,
    source: str,
    kind: str,
    id_field: str,
    question_field: str | None,
    choices_field: str,
    answer_field: str,
    template: str | None,
) -> None:
    from tasks.local import FieldMap, load_local

    fields = FieldMap(id=id_field, question=question_field, choices=choices_field, answer=answer_field)
    ingest({"samples": load_local(path, source, kind, fields, template, fmt)}, str(path))


def _register_local(fmt: str) -> None:
    @add_app.command(fmt, help=f"Samples from a {fmt.upper()} file.")
    @user_errors
    def add_file(
        path: Path,
        source: Annotated[str, typer.Option("--source", help="Name of the source.")],
        kind: KindOpt = "multiple_choice",
        id_field: IdField = "id",
        question_field: QuestionField = None,
        choices_field: ChoicesField = "choices",
        answer_field: AnswerField = "answer",
        template: TemplateOpt = None,
    ) -> None:
        _add_local(fmt, path, source, kind, id_field, question_field, choices_field, answer_field, template)


for _fmt in ("jsonl", "csv", "parquet"):
    _register_local(_fmt)


@add_app.command("starter")
@user_errors
def add_starter(
    names: Annotated[list[str] | None, typer.Argument(help="Starter tasks (default: all).")] = None,
) -> None:
    """The starter tasks shipped with poolbench (arithmetic, capitals, opposites, units, calendar)."""
    from tasks.starter import starter_samples

    ingest({"samples": starter_samples(names)}, "starter tasks")


@add_app.command("hf")
@user_errors
def add_hf(
    dataset: Annotated[str, typer.Argument(help="HF dataset id, builder (json, csv, parquet) or saved folder.")],
    source: Annotated[str, typer.Option("--source", help="Name of the source.")],
    config: Annotated[str | None, typer.Option(help="Dataset configuration.")] = None,
    split: Annotated[str, typer.Option(help="Split to add.")] = "test",
    data_files: Annotated[list[str] | None, typer.Option("--data-files", help="Files for a builder.")] = None,
    kind: KindOpt = "multiple_choice",
    id_field: IdField = "id",
    question_field: QuestionField = None,
    choices_field: ChoicesField = "choices",
    answer_field: AnswerField = "answer",
    template: TemplateOpt = None,
) -> None:
    """Samples from an HF dataset through datasets.load_dataset (offline: local files or a saved folder)."""
    from tasks.hf import load_hf
    from tasks.local import FieldMap

    fields = FieldMap(id=id_field, question=question_field, choices=choices_field, answer=answer_field)
    ingest({"samples": load_hf(dataset, source, config, split, kind, fields, template, data_files)}, dataset)


@add_app.command("lm-eval")
@user_errors
def add_lm_eval(
    tasks: Annotated[list[str], typer.Argument(help="lm-eval task or group names.")],
    include_path: Annotated[str | None, typer.Option(help="Folder of task YAMLs (skips the built-in index).")] = None,
    num_fewshot: Annotated[int, typer.Option(help="Bake lm-eval's own k-shot examples into the prompts.")] = 0,
    limit: Annotated[int | None, typer.Option(help="At most N documents per task.")] = None,
) -> None:
    """Samples from lm-eval tasks, with lm-eval's prompts, choices and targets."""
    from tasks.lm_eval_tasks import load_lm_eval_tasks

    ingest({"samples": load_lm_eval_tasks(tasks, include_path, num_fewshot, limit)}, "lm-eval " + " ".join(tasks))


# --------------------------------------------------------------------- import
import_app = typer.Typer(no_args_is_help=True, help="Import existing results (matrices, preferences, logs).")
app.add_typer(import_app, name="import")
SourceOpt = Annotated[str, typer.Option("--source", help="Name of the source the samples belong to.")]


def ingest(batch: dict[str, Any], what: str) -> None:
    """Write an adapter's or importer's tables to the pool (all or nothing) and say what landed."""
    written = open_pool(create=True).write(batch)
    summary = ", ".join(f"{n:,} {t}" for t, n in written.items() if n)
    stderr.print(f"{what}: {summary or 'nothing new (already in the pool)'}")


@import_app.command("matrix")
@user_errors
def import_matrix_command(
    path: Path,
    source: SourceOpt,
    metric: Annotated[str, typer.Option(help="Metric name of the values.")] = "acc",
    lower_is_better: Annotated[bool, typer.Option("--lower-is-better", help="Smaller values are better.")] = False,
) -> None:
    """A wide CSV/Parquet: a row per sample (first column: its id), a column per model, empty = missing."""
    from tasks.importers.matrix import import_matrix

    ingest(import_matrix(path, source, metric, not lower_is_better), str(path))


@import_app.command("pairwise")
@user_errors
def import_pairwise_command(
    path: Path,
    source: SourceOpt,
    model_a: Annotated[str, typer.Option("--model-a", help="Column of the first model.")] = "model_a",
    model_b: Annotated[str, typer.Option("--model-b", help="Column of the second model.")] = "model_b",
    winner: Annotated[
        str, typer.Option(help="Column of the winner: a|b|tie, left|right|tie or a model name.")
    ] = "winner",
    prompt: Annotated[str | None, typer.Option(help="Column of the prompt (one sample per prompt).")] = None,
    judge: Annotated[str | None, typer.Option(help="Column of the judge (human or LLM).")] = None,
) -> None:
    """Pairwise preferences: rows of model_a, model_b, winner [, prompt, judge]."""
    from tasks.importers.pairwise import import_pairwise

    ingest(import_pairwise(path, source, model_a, model_b, winner, prompt, judge), str(path))


@import_app.command("lm-eval-samples")
@user_errors
def import_lm_eval_samples_command(
    paths: Annotated[list[Path], typer.Argument(help="samples_<task>_<date>.jsonl files from --log_samples.")],
    model: Annotated[str, typer.Option("--model", help="The model's name in the pool.")],
) -> None:
    """lm-eval --log_samples JSONL: samples, one measurement per metric, and the responses."""
    from tasks.importers.lm_eval_samples import import_lm_eval_samples

    batches = [import_lm_eval_samples(path, model) for path in paths]  # all files parse before any write
    for path, batch in zip(paths, batches, strict=True):
        ingest(batch, str(path))


@import_app.command("helm")
@user_errors
def import_helm_command(run_dirs: Annotated[list[Path], typer.Argument(help="HELM run directories.")]) -> None:
    """HELM runs: instances.json + per_instance_stats.json (+ run_spec.json for the model)."""
    from tasks.importers.helm import import_helm

    batches = [import_helm(run_dir) for run_dir in run_dirs]
    for run_dir, batch in zip(run_dirs, batches, strict=True):
        ingest(batch, str(run_dir))


# --------------------------------------------------------------------- rank
SourcesOpt = Annotated[list[str] | None, typer.Option("--source", help="Only these sources (repeatable).")]
MethodOpt = Annotated[str, typer.Option(help="pl | mean | bt | elo | borda")]
AlphaOpt = Annotated[float, typer.Option(help="Gaussian prior on PL log-strengths (0 = maximum likelihood).")]
BootstrapOpt = Annotated[int, typer.Option(help="Bootstrap replicates over samples for 95% intervals.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the bootstrap.")]


def leaderboard(
    sources: list[str] | None,
    method: str,
    alpha: float,
    bootstrap: int,
    seed: int,
    metric: str | None = None,
    ties: str = "both",
    sample_ids: list[str] | None = None,
) -> tuple[Any, Any]:
    """Rank the pool's models on the selected samples (measurements and comparisons in one fit);
    returns the leaderboard and the measurements it rests on."""
    import aggregators
    from harness.reporting import ranking_inputs

    scores, comparisons = ranking_inputs(open_pool(), sources, metric, sample_ids)
    if scores.empty and comparisons.empty:
        raise PoolError("nothing to rank: no measurements or comparisons for the selected samples")
    if bootstrap:
        stderr.print(f"bootstrap: {bootstrap} replicates over samples")
    board = aggregators.rank(
        scores if len(scores) else None,
        method,
        alpha,
        bootstrap,
        seed,
        comparisons=comparisons if len(comparisons) else None,
        ties=ties,
    )
    return board, scores


def leaderboard_json(board: Any) -> dict[str, Any]:
    """The documented JSON of `rank`: method, models best first (NaN as null), diagnostics."""
    columns = ("model", "score", "rank", "ci_low", "ci_high", "rank_low", "rank_high", "n_samples")
    integers = ("rank", "rank_low", "rank_high", "n_samples")

    def plain(name: str, value: Any) -> Any:
        if name == "model":
            return str(value)
        if value != value:  # NaN
            return None
        return int(value) if name in integers else float(value)

    models = [{c: plain(c, row[c]) for c in columns} for _, row in board.iterrows()]
    return {"method": board.attrs["method"], "models": models, "diagnostics": board.attrs["diagnostics"]}


def print_leaderboard(board: Any) -> None:
    """The leaderboard as a table on stdout."""
    from rich.table import Table

    table = Table(title=f"poolbench leaderboard ({board.attrs['method']})")
    for column in ("rank", "model", "score", "95% CI", "rank range", "samples"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for _, row in board.iterrows():
        has_ci = row.ci_low == row.ci_low
        ci = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" if has_ci else ""
        ranks = f"{int(row.rank_low)}-{int(row.rank_high)}" if has_ci else ""
        table.add_row(str(row["rank"]), str(row.model), f"{row.score:.3f}", ci, ranks, f"{row.n_samples:,}")
    Console().print(table)
    prior = board.attrs["diagnostics"].get("prior_driven") or []
    if prior:
        stderr.print(f"[yellow]scores resting on the prior (alpha):[/] {', '.join(prior)}")


@app.command("rank")
@user_errors
def rank_command(
    method: MethodOpt = "pl",
    source: SourcesOpt = None,
    metric: Annotated[str | None, typer.Option(help="Rank on this metric instead of each sample's own.")] = None,
    alpha: AlphaOpt = 0.01,
    bootstrap: BootstrapOpt = 0,
    seed: SeedOpt = 0,
    ties: Annotated[str, typer.Option(help="Tied comparisons: both (a win each way) or half.")] = "both",
    as_json: JsonOpt = False,
) -> None:
    """Rank the models from every measurement and comparison of the selected sources."""
    board, _ = leaderboard(source, method, alpha, bootstrap, seed, metric, ties)
    if as_json:
        emit_json(leaderboard_json(board))
    else:
        print_leaderboard(board)


# --------------------------------------------------------------------- report
@app.command("report")
@user_errors
def report_command(
    out: Annotated[Path, typer.Option(help="Where to write the HTML file.")] = Path("report.html"),
    source: SourcesOpt = None,
    method: MethodOpt = "pl",
    alpha: AlphaOpt = 0.01,
    bootstrap: BootstrapOpt = 100,
    seed: SeedOpt = 0,
    browser_limit: Annotated[int, typer.Option(help="Samples per model in the sample browser.")] = 500,
) -> None:
    """Write a self-contained HTML leaderboard (plots, intervals, diagnostics, sample browser)."""
    from harness.reporting import build_report
    from reports.render import render_leaderboard

    board, scores = leaderboard(source, method, alpha, bootstrap, seed)
    data = build_report(
        open_pool(),
        board,
        scores,
        title="poolbench leaderboard",
        alpha=alpha,
        bootstrap=bootstrap,
        browser_limit=browser_limit,
    )
    write_html(out, render_leaderboard(data, cache_dir()))


def write_html(out: Path, html: str) -> None:
    """Write a page atomically and say where it is."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    stderr.print(f"report written to {out} ({len(html.encode()) / 1e6:.1f} MB)")


# --------------------------------------------------------------------- compare
@app.command("compare")
@user_errors
def compare_command(
    models: Annotated[list[str], typer.Argument(help="BASE CANDIDATE, or three or more models for a matrix.")],
    source: SourcesOpt = None,
    metric: Annotated[str | None, typer.Option(help="Compare on this metric instead of each sample's own.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of a regression.")] = 0.05,
    max_drop: Annotated[float, typer.Option(help="Tolerated drop of the candidate before it counts.")] = 0.0,
    min_shared: Annotated[int, typer.Option(help="Fewest shared samples for a verdict.")] = 30,
    seed: SeedOpt = 0,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML (a test case per source).")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the comparison as an HTML report.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Paired comparison on the samples both models have; exit 1 on a regression of CANDIDATE vs BASE."""
    from aggregators.paired import compare, compare_many
    from harness.reporting import ranking_inputs

    if len(models) < 2:
        raise PoolError("compare needs BASE and CANDIDATE (or more models)")
    scores, _ = ranking_inputs(open_pool(), source, metric)
    if len(models) > 2:
        table = compare_many(scores, models, min_shared, seed)
        if as_json:
            emit_json({"models": models, "pairs": table.to_dict(orient="records")})
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return
    result = compare(scores, models[0], models[1], alpha, max_drop, min_shared, seed)
    document = result.as_dict()
    if junit:
        write_junit(junit, document)
    if html:
        write_comparison_html(html, document, scores)
    if as_json:
        emit_json(document)
    else:
        verdict = "REGRESSION" if result.regression else "no regression"
        o = result.overall
        print(
            f"{result.candidate} vs {result.base}: {verdict}: delta {o.delta:+.4f} [{o.ci_low:+.4f}, "
            f"{o.ci_high:+.4f}], p = {o.p_value:.3g} ({o.test}) on {o.n_shared} shared samples"
        )
        for s in result.by_source:
            print(
                f"  {s['source']}: delta {s['delta']:+.4f}, p(Holm) = {s['p_holm']:.3g}, n = {s['n_shared']}"
                + ("  REGRESSION" if s["regression"] else "")
            )
    if result.regression:
        raise typer.Exit(1)


def write_junit(path: Path, document: dict[str, Any]) -> None:
    """JUnit XML: one test case per source plus the overall one; a regression is a failure."""
    from xml.etree import ElementTree as ET

    cases = [{"source": "overall", **document}] + list(document["by_source"])
    failures = sum(1 for c in cases if c["regression"])
    suite = ET.Element(
        "testsuite",
        name=f"poolbench compare {document['candidate']} vs {document['base']}",
        tests=str(len(cases)),
        failures=str(failures),
    )
    for case in cases:
        element = ET.SubElement(suite, "testcase", classname="poolbench.compare", name=str(case["source"]))
        if case["regression"]:
            failure = ET.SubElement(element, "failure", message="regression")
            failure.text = (
                f"delta {case['delta']:+.4f} [{case['ci_low']:+.4f}, {case['ci_high']:+.4f}], "
                f"p = {case.get('p_holm', case['p_value']):.3g} on {case['n_shared']} samples"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def write_comparison_html(path: Path, document: dict[str, Any], scores: Any) -> None:
    """The comparison through the report templates."""
    import pandas as pd

    from reports.render import ReportData, render_leaderboard

    pool = open_pool()
    prompts = pool.samples(sample_ids=[f["sample_id"] for f in document["flips"]]).set_index("sample_id")
    flips = [{**f, "prompt": prompts["prompt"].get(f["sample_id"], "")} for f in document["flips"]]
    header = {"pool": str(pool.path), "base": document["base"], "candidate": document["candidate"]}
    data = ReportData(
        title=f"poolbench compare: {document['candidate']} vs {document['base']}",
        header=header,
        board=pd.DataFrame(),
        source_means=pd.DataFrame(),
        coverage=pd.DataFrame(),
        diagnostics={},
        comparison={**document, "flips": flips},
    )
    write_html(path, render_leaderboard(data, cache_dir()))


# --------------------------------------------------------------------- run
@app.command("run")
@user_errors
def run_command(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Backend: any lm-eval model (hf, vllm, local-completions, ...) or baseline-random|longest|shortest.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The model's name in the pool.")],
    model_args: Annotated[
        str,
        typer.Option(
            "--model-args",
            help="k=v,... for the backend (pretrained=builtin:smollm2-135m for the bundled model).",
        ),
    ] = "",
    source: SourcesOpt = None,
    fraction: Annotated[float | None, typer.Option(help="A seeded random fraction of the samples.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N samples per source (seeded order).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample selection.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Samples per batch (written to the pool together).")] = 8,
    num_fewshot: Annotated[int, typer.Option(help="Few-shot examples per sample, drawn from its source.")] = 0,
    device: Annotated[str | None, typer.Option(help="Device for the backend (cpu, cuda, ...).")] = None,
    answer_pattern: Annotated[str | None, typer.Option(help="Regex extracting a generated answer.")] = None,
    same_subset_as: Annotated[
        str | None,
        typer.Option(help="Select the samples MODEL would get (for paired comparisons of a new checkpoint)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Evaluate a model on (a subset of) the pool; reruns skip what is already measured."""
    from harness.backends import make_backend, parse_model_args
    from harness.runner import RunSpec, run

    if fraction is not None and limit is not None:
        raise PoolError("give --fraction or --limit, not both")
    pool = open_pool()
    spec = RunSpec(
        model=name,
        backend=model,
        model_args=parse_model_args(model_args),
        sources=tuple(source) if source else None,
        fraction=fraction,
        limit=limit,
        seed=seed,
        batch_size=batch_size,
        num_fewshot=num_fewshot,
        answer_pattern=answer_pattern,
    )
    if spec.fraction is not None and not 0 < spec.fraction <= 1:
        raise PoolError(f"--fraction must be in (0, 1], got {spec.fraction}")
    backend = make_backend(model, spec.model_args, batch_size, device, seed)
    result = run(pool, spec, backend, progress=progress)
    stderr.print(
        f"{name}: {result.evaluated} samples evaluated, {result.skipped} already measured (run {result.run_id})"
    )


# --------------------------------------------------------------------- demo
@app.command("demo")
@user_errors
def demo_command(
    out: Annotated[Path, typer.Option(help="Folder for the demo's pool and report.")] = Path("demo"),
    small: Annotated[bool, typer.Option(help="The same pipeline at reduced size (what the tests run).")] = False,
) -> None:
    """The main job on the embedded default: starter tasks, SmolLM2 and baselines, ranking, report, compare."""
    from harness.demo import run_demo

    board, verdict = run_demo(out, small=small, console=stderr)
    print_leaderboard(board)
    o = verdict.overall
    print(
        f"compare smollm2-135m-int8 vs smollm2-135m: {'REGRESSION' if verdict.regression else 'no regression'}"
        f" (delta {o.delta:+.3f} [{o.ci_low:+.3f}, {o.ci_high:+.3f}], p = {o.p_value:.3g}, "
        f"{o.n_shared} shared samples)"
    )
    print(f"report: {out / 'report.html'}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
