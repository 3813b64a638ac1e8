"""`poolbench pool ...`, `add ...` and `import ...`: creating a pool and putting samples and results in it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from harness.cli_common import (
    AnswerPatternOpt,
    JsonOpt,
    SourceOpt,
    emit_json,
    import_files,
    ingest,
    open_pool,
    pool_name,
    stderr,
    user_errors,
)
from harness.schema import TABLES, PoolError, name_list

pool_app = typer.Typer(no_args_is_help=True, help="Create, inspect and maintain a pool directory.")


@pool_app.command("init")
@user_errors
def pool_init() -> None:
    """Create an empty pool directory (a no-op if it exists)."""
    pool = open_pool(create=True)
    stderr.print(f"pool ready at {pool.path}")


@pool_app.command("stats")
@user_errors
def pool_stats(as_json: JsonOpt = False) -> None:
    """Counts of samples, models, measurements and comparisons, per source; segments per table."""
    pool = open_pool()
    stats = pool.stats()
    if as_json:
        emit_json(stats)
        return
    for key in ("samples", "models", "measurements", "comparisons"):
        print(f"{key:>13}: {stats[key]:,}")
    for source, counts in stats["sources"].items():  # type: ignore[attr-defined]
        print(f"  {source}: {counts['samples']:,} samples, {counts['measurements']:,} measurements")
    segments = {table: len(pool.store.segments(table)) for table in TABLES}
    print(f"{'segments':>13}: " + (", ".join(f"{table} {n:,}" for table, n in segments.items() if n) or "none"))
    crowded = [f"{table} ({n:,})" for table, n in segments.items() if n >= CROWDED_SEGMENTS]
    if crowded:
        sys.stdout.flush()  # the counts first, then the advice
        stderr.print(
            f"many segments in {', '.join(crowded)}; every read opens each: `poolbench pool compact` merges them"
        )


@pool_app.command("runs")
@user_errors
def pool_list_runs(
    models: Annotated[list[str] | None, typer.Option("--model", help="Only this model's runs (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run: backend, device and dtype, settings, status, values, start, time taken, error; imported too."""
    from harness.present import print_runs
    from harness.reporting import pool_runs

    runs = pool_runs(open_pool(), models)
    if not runs:
        named = f" of {name_list(models)}" if models else ""
        raise PoolError(f"no runs{named} in the pool (`poolbench run` a model, or `poolbench import` results)")
    if as_json:
        emit_json({"runs": runs})
        return
    print_runs(runs)


#: Segments of one table from which `pool stats` suggests compacting (reads open each, about 0.2 ms apiece).
CROWDED_SEGMENTS = 500


@pool_app.command("compact")
@user_errors
def pool_compact() -> None:
    """Merge each table's segments into one (same logical content)."""
    pool = open_pool()
    for table in TABLES:
        pool.store.compact(table)
    stderr.print("compacted")


@pool_app.command("rename-model")
@user_errors
def pool_rename_model(
    old: Annotated[str, typer.Argument(callback=pool_name, help="The model's name in the pool.")],
    new: Annotated[str, typer.Argument(callback=pool_name, help="Its new name (a model's already: one model).")],
) -> None:
    """Rename a model in every table: one model named two ways (by two sources) becomes one."""
    pool = open_pool()
    merged = pool.read("models", models=[new]).shape[0] > 0
    counts = pool.rename_model(old, new)
    rows = ", ".join(f"{table} {n:,}" for table, n in counts.items() if n)
    stderr.print(f"renamed {old!r} to {new!r}{' (merged with it)' if merged else ''}: rows {rows}")


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking.")]


@pool_app.command("remove-model")
@user_errors
def pool_remove_model(
    models: Annotated[list[str] | None, typer.Argument(help="The models' names in the pool.")] = None,
    idle: Annotated[bool, typer.Option("--idle", help="Also every model with nothing measured or compared.")] = False,
    yes: YesOpt = False,
) -> None:
    """Remove models and everything of theirs: measurements, responses, comparisons, runs (asks first)."""
    pool = open_pool()
    named = [name.strip() for name in models or []]  # stripped, as `pool_name` strips names
    models = list(dict.fromkeys(named + (pool.idle_models() if idle else [])))
    if not models:
        raise PoolError(
            "every model has something measured or compared: none is idle" if idle else "name models, or give --idle"
        )
    _confirm(yes, f"remove {name_list(models)} and all their rows from {pool.path}?")
    _removed(f"removed {name_list(models)}", pool.remove_models(models))


@pool_app.command("remove-source")
@user_errors
def pool_remove_source(
    source: Annotated[str, typer.Argument(callback=pool_name, help="The source's name in the pool.")],
    yes: YesOpt = False,
) -> None:
    """Remove a source's samples and everything measured on them (asks first).

    The models stay, with their runs; those left with nothing measured are named (pool remove-model --idle
    removes them)."""
    pool = open_pool()
    _confirm(yes, f"remove source {source!r}, its samples and every result on them from {pool.path}?")
    _removed(f"removed source {source!r}", pool.remove_source(source))
    idle = pool.idle_models()
    if idle:
        stderr.print(
            f"{len(idle):,} models have nothing measured left (pool remove-model --idle removes them): "
            f"{name_list(idle)}"
        )


def _confirm(yes: bool, question: str) -> None:
    """Go on when `yes`, else only when the user says yes to `question` (exit 1 otherwise)."""
    if not yes and not typer.confirm(question, err=True):
        stderr.print("nothing removed")
        raise typer.Exit(1)


def _removed(done: str, counts: dict[str, int]) -> None:
    stderr.print(f"{done}: rows {', '.join(f'{table} {n:,}' for table, n in counts.items() if n)}")


@pool_app.command("export")
@user_errors
def pool_export(
    out: Annotated[Path, typer.Argument(help="Directory for one Parquet file per table.")],
) -> None:
    """Write one Parquet file per table (the logical content) to OUT."""
    import pyarrow.parquet as pq

    pool = open_pool()
    if out.exists() and not out.is_dir():
        raise PoolError(f"{out} is a file: name a folder to export the tables to")
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
#: tasks.local.KINDS, spelled out for the option parser (a test checks they agree).
Kind = Literal["multiple_choice", "generation", "continuation", "document"]
KindOpt = Annotated[
    Kind,
    typer.Option(
        help="The samples' kind (continuation: the answer continues the prompt as it is, its space included; "
        "document: the prompt alone, a text ranked by its log-likelihood, no answer)."
    ),
]
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


def _register_local(fmt: str, name: str) -> None:
    @add_app.command(fmt, help=f"Samples from a {name} file.")
    @user_errors
    def add_file(
        path: Path,
        source: SourceOpt,
        kind: KindOpt = "multiple_choice",
        id_field: IdField = "id",
        question_field: QuestionField = None,
        choices_field: ChoicesField = "choices",
        answer_field: AnswerField = "answer",
        template: TemplateOpt = None,
    ) -> None:
        _add_local(fmt, path, source, kind, id_field, question_field, choices_field, answer_field, template)


for _fmt, _name in (("jsonl", "JSONL"), ("csv", "CSV"), ("parquet", "Parquet")):
    _register_local(_fmt, _name)


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
    source: SourceOpt,
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
    num_fewshot: Annotated[int, typer.Option(min=0, help="Bake lm-eval's own k-shot examples into the prompts.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N documents per task.")] = None,
) -> None:
    """Samples from lm-eval tasks, with lm-eval's prompts, choices and targets."""
    from tasks.lm_eval_tasks import load_lm_eval_tasks

    ingest({"samples": load_lm_eval_tasks(tasks, include_path, num_fewshot, limit)}, "lm-eval " + " ".join(tasks))


# --------------------------------------------------------------------- import
import_app = typer.Typer(no_args_is_help=True, help="Import existing results (matrices, preferences, logs).")


@import_app.command("matrix")
@user_errors
def import_matrix_command(
    path: Path,
    source: SourceOpt,
    metric: Annotated[str, typer.Option(help="Metric name of the values.")] = "acc",
    lower_is_better: Annotated[
        bool | None,
        typer.Option(
            "--lower-is-better/--higher-is-better",
            help="Whether smaller values are better; default: from the metric's name (perplexity, loss, rank...).",
        ),
    ] = None,
) -> None:
    """A wide CSV/Parquet: a row per sample (first column: its id), a column per model, empty = missing."""
    from tasks.importers.matrix import import_matrix

    higher_is_better = None if lower_is_better is None else not lower_is_better
    ingest(import_matrix(path, source, metric, higher_is_better), str(path))


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
    prompt: Annotated[
        str | None,
        typer.Option(help="Column of the prompt, one sample per prompt \\[default: prompt, if the file has it]."),
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="Column of the judge, human or LLM \\[default: judge, if the file has it].")
    ] = None,
) -> None:
    """Pairwise preferences: rows of model_a, model_b, winner [, prompt, judge]."""
    from tasks.importers.pairwise import import_pairwise

    ingest(import_pairwise(path, source, model_a, model_b, winner, prompt, judge), str(path))


@import_app.command("lm-eval-samples")
@user_errors
def import_lm_eval_samples_command(
    paths: Annotated[list[Path], typer.Argument(help="samples_<task>_<date>.jsonl files from --log_samples.")],
    model: Annotated[str, typer.Option("--model", callback=pool_name, help="The model's name in the pool.")],
) -> None:
    """lm-eval --log_samples JSONL: samples, one measurement per metric, and the responses."""
    from tasks.importers.lm_eval_samples import import_lm_eval_samples

    import_files(paths, lambda path: import_lm_eval_samples(path, model), "lm-eval samples files")


@import_app.command("inspect")
@user_errors
def import_inspect_command(
    paths: Annotated[
        list[str],
        typer.Argument(help="inspect_ai logs (.eval or .json), or directories of them; local, or URLs (s3://...)."),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", callback=pool_name, help="The model's name in the pool \\[default: the log's]."),
    ] = None,
) -> None:
    """inspect_ai eval logs: samples, one measurement per scorer (inspect's reduced score), and the responses."""
    from tasks.importers.inspect_logs import import_inspect_log, log_files

    import_files(log_files(paths), lambda path: import_inspect_log(path, model), "inspect_ai logs")


@import_app.command("outputs")
@user_errors
def import_outputs_command(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet: a row per sample, its output text.")],
    model: Annotated[str, typer.Option("--model", callback=pool_name, help="The model's name in the pool.")],
    source: Annotated[
        str | None, typer.Option(help="Source of the rows' samples \\[default: each row's `source` field].")
    ] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="Field of the sample's source id.")] = "id",
    output_field: Annotated[str, typer.Option("--output-field", help="Field of the output text.")] = "output",
    answer_pattern: AnswerPatternOpt = None,
) -> None:
    """Outputs made elsewhere for generation and multiple-choice samples (by letter), scored as `run` scores them."""
    from harness.scoring import plain_scoring_notes, score_outputs
    from tasks.importers.outputs import read_outputs

    pool = open_pool()
    samples = pool.samples(sources=source) if source is not None else pool.samples()
    outputs = read_outputs(path, samples, source, id_field, output_field)
    for note in plain_scoring_notes(samples[samples["sample_id"].isin(outputs["sample_id"])]):
        stderr.print(f"note: {note}")
    ingest(score_outputs(samples, outputs, model, f"import:{path.name}", answer_pattern), str(path))


@import_app.command("helm")
@user_errors
def import_helm_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="HELM run directories.")],
    metric: Annotated[
        str | None,
        typer.Option(help="The stat to rank the samples on \\[default: the run's headline in HELM's schema]."),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            help="HELM's schema.json, which names each run group's headline stat "
            "\\[default: schema.json beside the run directory, if there is one]."
        ),
    ] = None,
) -> None:
    """HELM runs: instances.json + per_instance_stats.json (+ run_spec.json for the model and groups)."""
    from tasks.importers.helm import import_helm

    import_files(run_dirs, lambda run_dir: import_helm(run_dir, metric, schema), "HELM runs")
