"""`poolbench`: the command line, and the composition root that wires harness, tasks, aggregators and reports.

Every command that reports takes `--json` and then prints exactly one JSON document on stdout; progress and
logs go to stderr. Errors: one line on stderr, exit code 2, pool unchanged.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer

from harness.cli_common import (
    DEFAULT_METHOD,
    AlphaOpt,
    AnswerPatternOpt,
    BootstrapOpt,
    ExcludeOpt,
    JsonOpt,
    MethodOpt,
    MetricOpt,
    QueryOpt,
    SeedOpt,
    SourcesOpt,
    ThresholdOpt,
    TiesOpt,
    TopKOpt,
    WhereOpt,
    batch_size_option,
    emit_json,
    open_pool,
    pool_name,
    set_pool,
    shard_option,
    stderr,
    user_errors,
    write_html,
    write_sample_list,
)
from harness.cli_data import add_app, import_app, pool_app
from harness.models import cache_dir
from harness.plan import Shard
from harness.present import (
    leaderboard,
    leaderboard_json,
    none_reach,
    nothing_measured,
    print_board_notes,
    print_leaderboard,
    print_probe,
    probe_pool,
    selected_sample_ids,
    show_workload,
    write_comparison_html,
    write_junit,
)
from harness.schema import PoolError, name_list

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="poolbench: rank language models from sparse, sample-level measurements.",
)
app.add_typer(pool_app, name="pool")
app.add_typer(add_app, name="add")
app.add_typer(import_app, name="import")


def _print_versions(asked: bool) -> None:
    """--version: poolbench's version and those of the packages that shape its numbers, then exit."""
    if asked:
        from harness.runner import package_versions

        print(", ".join(f"{name} {version}" for name, version in package_versions().items()))
        raise typer.Exit()


@app.callback()
def main_options(
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool",
            metavar="<path|url>",
            help="Pool directory, or an fsspec URL such as s3://bucket/pool (default: $POOLBENCH_POOL, else ./pool).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_versions, is_eager=True, help="Show the versions and exit.")
    ] = False,
) -> None:
    """poolbench: rank language models from sparse, sample-level measurements."""
    set_pool(pool)


@app.command("rank")
@user_errors
def rank_command(
    method: MethodOpt = DEFAULT_METHOD,
    source: SourcesOpt = None,
    metric: MetricOpt = None,
    alpha: AlphaOpt = None,
    bootstrap: BootstrapOpt = 0,
    seed: SeedOpt = 0,
    ties: TiesOpt = "both",
    query: QueryOpt = None,
    top_k: TopKOpt = None,
    threshold: ThresholdOpt = None,
    where: WhereOpt = None,
    exclude_samples: ExcludeOpt = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the leaderboard as CSV on stdout.")] = False,
) -> None:
    """Rank the models from every measurement and comparison of the selected sources.

    With --query: of the samples that fit it (see `probe`); --exclude-samples leaves out those a file lists."""
    if as_json and as_csv:
        raise PoolError("--json and --csv: choose one")
    from harness.reporting import leaderboard_csv, mixed_settings_notes, model_runs

    sample_ids = selected_sample_ids(query, top_k, threshold, source, where, exclude_samples)
    board, scores, comparisons = leaderboard(source, method, alpha, bootstrap, seed, metric, ties, sample_ids)
    runs = model_runs(open_pool(), scores, board["model"].tolist(), comparisons)
    for note in mixed_settings_notes(runs):
        stderr.print(f"warning: {note}")
    print_board_notes(board)
    if as_csv:
        sys.stdout.write(leaderboard_csv(board))
    elif as_json:
        document = {**leaderboard_json(board), "runs": runs}
        if query is not None:
            document["probe"] = {"query": query, "n_samples": len(sample_ids or [])}
        if exclude_samples is not None:
            document["excluded"] = {"file": str(exclude_samples), "n_samples": len(sample_ids or [])}
        emit_json(document)
    else:
        print_leaderboard(board)


# --------------------------------------------------------------------- report
@app.command("report")
@user_errors
def report_command(
    out: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the HTML file.")] = Path("report.html"),
    source: SourcesOpt = None,
    method: MethodOpt = DEFAULT_METHOD,
    metric: MetricOpt = None,
    alpha: AlphaOpt = None,
    bootstrap: BootstrapOpt = 100,
    seed: SeedOpt = 0,
    ties: TiesOpt = "both",
    browser_limit: Annotated[int, typer.Option(min=0, help="Samples per model in the sample browser.")] = 500,
    query: QueryOpt = None,
    top_k: TopKOpt = None,
    threshold: ThresholdOpt = None,
    where: WhereOpt = None,
    exclude_samples: ExcludeOpt = None,
) -> None:
    """Write a self-contained HTML leaderboard: plots, intervals, diagnostics, sample browser.

    Of the selected sources, or with --query of the samples that fit it; less those --exclude-samples lists."""
    from harness.reporting import build_report
    from reports.render import render_leaderboard

    sample_ids = selected_sample_ids(query, top_k, threshold, source, where, exclude_samples)
    board, scores, comparisons = leaderboard(source, method, alpha, bootstrap, seed, metric, ties, sample_ids)
    header = {"metric": metric} if metric is not None else {}
    kept = len(sample_ids or [])
    if query is not None:
        header["query"] = f"{query!r}: the {kept:,} samples that fit it" + (
            " and are not excluded" * bool(exclude_samples)
        )
    if exclude_samples is not None:
        header["excluded"] = f"the samples {exclude_samples} lists ({kept:,} samples left)"
    data = build_report(
        open_pool(),
        board,
        scores,
        comparisons=comparisons,
        title="poolbench leaderboard" + (f": {query}" if query else ""),
        bootstrap=bootstrap,
        browser_limit=browser_limit,
        extra_header=header,
    )
    write_html(out, render_leaderboard(data, cache_dir()))


# --------------------------------------------------------------------- probe
@app.command("probe")
@user_errors
def probe_command(
    text: Annotated[str, typer.Argument(help="The question, e.g. 'abstract algebra'.")],
    top_k: TopKOpt = None,
    threshold: ThresholdOpt = None,
    source: SourcesOpt = None,
    where: WhereOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The samples of the pool that fit a question (cosine similarity of embeddings, or BM25 without them)."""
    result = probe_pool(text, top_k, threshold, source, where)
    if as_json:
        emit_json(result.as_json())
    elif result.samples.empty:
        stderr.print(none_reach(threshold, result.method))
    else:
        print_probe(result)


# --------------------------------------------------------------------- contamination
@app.command("contamination")
@user_errors
def contamination_command(
    corpus: Annotated[
        list[str],
        typer.Argument(
            metavar="CORPUS",
            help="Corpus files, folders of them or glob patterns: JSON lines (.jsonl), Parquet or plain text, "
            "compressed or not (.gz, .bz2, .xz, .zst); paths or fsspec URLs.",
        ),
    ],
    source: SourcesOpt = None,
    ngram: Annotated[int, typer.Option(min=1, help="Words per n-gram (13: lm-eval's and GPT-3's).")] = 13,
    text_field: Annotated[str, typer.Option(help="The text's field (JSON lines) or column (Parquet).")] = "text",
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write the overlapping samples as CSV (for --exclude-samples)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The samples a text corpus contains, per source (lm-eval's decontamination rule).

    A sample overlaps when an n-gram of its prompt and choices is in a corpus document (case, punctuation ignored)."""
    from harness.present import find_contamination, print_contamination

    found = find_contamination(corpus, source, ngram, text_field)
    if out is not None:
        write_sample_list(out, found.samples, "overlapping")
    if as_json:
        emit_json(
            {
                "ngram": ngram,
                "corpus": found.files,
                "words_scanned": found.words_scanned,
                "sources": found.summary.to_dict(orient="records"),
                "samples": found.samples.to_dict(orient="records"),
            }
        )
    else:
        print_contamination(found, ngram)


# --------------------------------------------------------------------- audit
#: aggregators.audit's MIN_MODELS and FDR, spelled out so that the CLI starts without importing scipy (a test
#: checks they agree).
AUDIT_MIN_MODELS, AUDIT_FDR = 10, 0.1


@app.command("audit")
@user_errors
def audit_command(
    source: SourcesOpt = None,
    metric: MetricOpt = None,
    method: MethodOpt = DEFAULT_METHOD,
    min_models: Annotated[
        int, typer.Option(min=3, help="Test samples measured on at least N ranked models.")
    ] = AUDIT_MIN_MODELS,
    fdr: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="False discovery rate of the samples flagged.")
    ] = AUDIT_FDR,
    top: Annotated[int, typer.Option(min=1, help="Show the N most suspect samples.")] = 20,
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write the flagged samples as CSV (for --exclude-samples)."),
    ] = None,
    exclude_samples: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The samples that run against the ranking: stronger models fail them more often (a wrong key?).

    Per sample: Spearman's r of the values of the models measured on it with their scores; tested for r < 0."""
    from aggregators.audit import flagged
    from harness.present import audit_pool, print_audit

    table = audit_pool(source, metric, method, min_models, exclude_samples)
    suspects = flagged(table, fdr)
    if out is not None:
        columns = ["sample_id", "source", "source_id", "metric", "n_models", "r", "p_value", "q_value"]
        write_sample_list(out, suspects[columns], "flagged")
    if as_json:
        document = {"method": method, "min_models": min_models, "fdr": fdr, "tested": len(table)}
        emit_json({**document, "flagged": len(suspects), "samples": table.to_dict(orient="records")})
    else:
        print_audit(table, fdr, top)


# --------------------------------------------------------------------- compare
@app.command("compare")
@user_errors
def compare_command(
    models: Annotated[list[str], typer.Argument(help="BASE CANDIDATE, or three or more models for a matrix.")],
    source: SourcesOpt = None,
    metric: MetricOpt = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Significance level of a regression.")] = 0.05,
    max_drop: Annotated[float, typer.Option(min=0.0, help="Tolerated drop of the candidate before it counts.")] = 0.0,
    min_shared: Annotated[int, typer.Option(min=1, help="Fewest shared samples for a verdict.")] = 30,
    seed: SeedOpt = 0,
    junit: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write JUnit XML (a test case per source).")
    ] = None,
    html: Annotated[Path | None, typer.Option(dir_okay=False, help="Write the comparison as an HTML report.")] = None,
    exclude_samples: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Paired comparison on the samples both models have; exit 1 on a regression of CANDIDATE vs BASE.

    Three or more models: every pair, Holm-corrected across pairs, significant where p_holm < --alpha.

    --exclude-samples leaves out the samples a file lists.
    """
    from aggregators.paired import compare, compare_many
    from harness.reporting import mixed_settings_notes, model_runs, ranking_inputs

    if len(models) < 2:
        raise PoolError("compare needs BASE and CANDIDATE (or more models)")
    if len(models) > 2 and (junit or html or max_drop):
        raise PoolError("--junit, --html and --max-drop judge one CANDIDATE against one BASE; name two models")
    pool = open_pool()
    sample_ids = selected_sample_ids(None, None, None, source, None, exclude_samples)
    scores, comparisons = ranking_inputs(pool, source, metric, sample_ids)
    if scores.empty:
        raise PoolError(nothing_measured(source, metric, "compare"))
    measured = set(scores["model"])
    unmeasured = [m for m in models if m not in measured]
    if unmeasured:
        model = unmeasured[0]
        compared = model in {*comparisons["model_a"], *comparisons["model_b"]}
        why = " (only compared with other models: compare pairs measurements; rank ranks comparisons too)"
        raise PoolError(
            f"model {model!r} has no measurements here{why if compared else ''}; measured: {name_list(measured)}"
        )
    warnings = mixed_settings_notes(model_runs(pool, scores[scores["model"].isin(models)], models))
    for warning in warnings:
        stderr.print(f"warning: {warning}: the differences mix prompt effects with model effects")
    if len(models) > 2:
        table = compare_many(scores, models, alpha, min_shared, seed)
        skipped = table["reason"] != ""
        for reason in table.loc[skipped, "reason"]:
            stderr.print(f"warning: not compared: {reason}")
        compared = table[~skipped].drop(columns="reason")
        if as_json:
            not_compared = table.loc[skipped, ["base", "candidate", "n_shared", "reason"]].to_dict(orient="records")
            emit_json(
                {
                    "models": models,
                    "pairs": compared.to_dict(orient="records"),
                    "not_compared": not_compared,
                    "warnings": warnings,
                }
            )
        else:
            print(compared.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return
    result = compare(scores, models[0], models[1], alpha, max_drop, min_shared, seed)
    unpooled = result.unpooled_note()
    if unpooled:
        stderr.print(f"warning: {unpooled}")
    document = {
        **result.as_dict(),
        "power": result.power_note(),
        "warnings": warnings + ([unpooled] if unpooled else []),
    }
    if junit:
        write_junit(junit, document)
    if html:
        write_comparison_html(html, document)
    if as_json:
        emit_json(document)
    else:
        print(f"{result.candidate} vs {result.base}: {result.headline()}")
        for s in result.by_source:
            print(
                f"  {s['source']}: delta {s['delta']:+.4f} [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}], "
                f"p(Holm) = {s['p_holm']:.3g}, n = {s['n_shared']:,}" + ("  REGRESSION" if s["regression"] else "")
            )
        if document["power"]:
            print(f"  {document['power']}")
    if result.regression:
        raise typer.Exit(1)


# --------------------------------------------------------------------- run
#: runner.MULTIPLE_CHOICE, spelled out so that the CLI starts without importing the runner (a test checks).
MultipleChoice = Literal["log-likelihood", "letter"]


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
    name: Annotated[str, typer.Option("--name", callback=pool_name, help="The model's name in the pool.")],
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
    batch_size: Annotated[
        str,
        typer.Option(
            callback=batch_size_option,
            metavar="B|auto",
            help="Samples per batch; auto: the most that fit in the GPU's memory, as lm-eval's auto finds them.",
        ),
    ] = "8",
    num_fewshot: Annotated[int, typer.Option(min=0, help="Few-shot examples per sample, drawn from its source.")] = 0,
    device: Annotated[str | None, typer.Option(help="Device for the backend (cpu, cuda, ...).")] = None,
    answer_pattern: AnswerPatternOpt = None,
    max_gen_tokens: Annotated[
        int,
        typer.Option(
            min=1,
            help="At most N tokens per generation, where an lm-eval task sets no length (its max_gen_toks).",
        ),
    ] = 64,
    same_subset_as: Annotated[
        str | None,
        typer.Option(
            help="The samples MODEL was measured on (of the selected sources; --fraction/--limit take part of "
            "them), for paired comparisons of a new checkpoint; a MODEL without measurements: those it would get."
        ),
    ] = None,
    apply_chat_template: Annotated[
        bool,
        typer.Option(
            "--apply-chat-template",
            help="Render prompts with the model's chat template, as lm-eval's --apply_chat_template does.",
        ),
    ] = False,
    system_instruction: Annotated[
        str | None,
        typer.Option(help="Text before each prompt (the system message with --apply-chat-template)."),
    ] = None,
    fewshot_as_multiturn: Annotated[
        bool | None,
        typer.Option(
            "--fewshot-as-multiturn/--no-fewshot-as-multiturn",
            help="With --apply-chat-template: each few-shot example a user turn and an assistant turn "
            "(the default, as in lm-eval), or all in one user message.",
            show_default=False,
        ),
    ] = None,
    multiple_choice: Annotated[
        MultipleChoice,
        typer.Option(
            help="How multiple-choice samples are answered: by each choice's log-likelihood, as lm-eval scores "
            "them, or with the letter of a choice listed in the prompt, generated (acc only; for chat endpoints, "
            "which give no log-probabilities)."
        ),
    ] = "log-likelihood",
    shard: Annotated[
        Shard | None,
        typer.Option(
            parser=shard_option,
            metavar="K/N",
            help="Part K of N of the selection, for N processes (GPUs, machines) sharing one run; each runs "
            "the same command with its own K.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Say what the run would evaluate (samples, log-likelihood requests, generations per source) "
            "and stop: no model is loaded, no backend checked (one that cannot answer some kinds leaves them out "
            "when it runs), nothing written.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: one JSON document on stdout.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Evaluate a model on (a subset of) the pool; reruns skip what is already measured."""
    if not progress:  # lm-eval's and transformers' own bars too (tqdm reads it when first imported)
        os.environ["TQDM_DISABLE"] = "1"
    from harness.backends import AUTO, make_backend, parse_model_args
    from harness.plan import check_selection
    from harness.runner import RunSpec, evaluate

    if fraction is not None and limit is not None:
        raise PoolError("give --fraction or --limit, not both")
    if as_json and not dry_run:
        raise PoolError("--json goes with --dry-run (a run reports on stderr)")
    pool = open_pool()
    batch = batch_size if batch_size == AUTO else int(batch_size)
    spec = RunSpec(
        model=name,
        backend=model,
        model_args=parse_model_args(model_args),
        sources=tuple(source) if source else None,
        fraction=fraction,
        limit=limit,
        seed=seed,
        batch_size=batch,
        num_fewshot=num_fewshot,
        answer_pattern=answer_pattern,
        max_gen_tokens=max_gen_tokens,
        subset_of=same_subset_as,
        chat_template=apply_chat_template,
        system_instruction=system_instruction,
        fewshot_as_multiturn=apply_chat_template if fewshot_as_multiturn is None else fewshot_as_multiturn,
        multiple_choice=multiple_choice,
        shard=shard,
    )
    check_selection(fraction, limit)  # before the model loads
    if dry_run:
        show_workload(pool, spec, as_json)
        return
    build = partial(make_backend, model, spec.model_args, batch, device, seed)
    result = evaluate(pool, spec, build, progress=progress, notify=lambda text: stderr.print(f"note: {text}"))
    stderr.print(
        f"{name}: {result.evaluated} samples evaluated, {result.skipped} already measured (run {result.run_id}"
        f"{f', shard {shard}' if shard else ''})"
        + ("; the run stays partial until the other shards end" if result.status == "partial" else "")
    )


# --------------------------------------------------------------------- demo
@app.command("demo")
@user_errors
def demo_command(
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for the demo's pool and report.")] = Path("demo"),
    small: Annotated[bool, typer.Option(help="The same pipeline at reduced size (what the tests run).")] = False,
) -> None:
    """The main job on the embedded default: starter tasks, SmolLM2 and baselines, ranking, report, compare."""
    from harness.demo import run_demo

    board, verdict = run_demo(out, small=small, console=stderr)
    print_leaderboard(board)
    print_board_notes(board)
    print(f"compare {verdict.candidate} vs {verdict.base}: {verdict.headline()}")
    print(f"report: {out / 'report.html'}")


def main() -> None:
    """Console-script entry point. A process that imported vLLM leaves as soon as its output is flushed
    (`os._exit`, with the command's exit code): vLLM's threads, torn down with the interpreter, abort it now and
    then even after the engine was shut down ('terminate called without an active exception', exit -6, after a
    finished run; once in four fresh-clone CI runs of the vLLM lane)."""
    try:
        app()
    except SystemExit as done:
        if "vllm" not in sys.modules:
            raise
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
