"""What the command line shows: leaderboards, comparisons, runs, a dry run's workload; tables, JSON, JUnit XML, HTML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from harness.cli_common import counting_bar, emit_json, open_pool, stderr, stdout, write_html
from harness.models import cache_dir
from harness.schema import PoolError, name_list

if TYPE_CHECKING:
    from harness.pool import Pool
    from harness.runner import RunSpec


def nothing_measured(sources: list[str] | None, metric: str | None, command: str = "rank") -> str:
    """Why the selected samples leave `command` ("rank", which also takes comparisons, or "compare") nothing to
    work on: an empty pool, a pool without measurements, or the metrics measured on them if those are others."""
    import pyarrow.compute as pc

    pool = open_pool()
    counts = pool.stats()
    if not counts["measurements"] and not (command == "rank" and counts["comparisons"]):
        if not counts["samples"]:
            return (
                f"nothing to {command}: the pool is empty (`poolbench add` samples, then `poolbench run` a model; "
                "or `poolbench import` results)"
            )
        return f"nothing to {command}: no model is measured yet (`poolbench run` one, or `poolbench import` results)"
    measured = pool.read_arrow("measurements", sources=sources, columns=["metric"])["metric"]
    others = sorted(set(pc.unique(measured).to_pylist()) - {metric})
    hint = f" (their measurements are of {name_list(others)}: choose one with --metric)" if others else ""
    asked = f"metric {metric!r}" if metric is not None else "the samples' own metric"
    comparisons = " or comparisons" if command == "rank" else ""
    return f"nothing to {command}: no measurements of {asked}{comparisons} for the selected samples{hint}"


def leaderboard(
    sources: list[str] | None,
    method: str,
    alpha: float | None,
    bootstrap: int,
    seed: int,
    metric: str | None = None,
    ties: str = "both",
    sample_ids: list[str] | None = None,
) -> tuple[Any, Any, Any]:
    """Rank the pool's models on the selected samples (measurements and comparisons in one fit);
    returns the leaderboard and the measurements and comparisons it rests on. `alpha` None: the default prior;
    given to a method that takes no prior, a note on stderr says so."""
    import aggregators
    from harness.reporting import ranking_inputs

    scores, comparisons = ranking_inputs(open_pool(), sources, metric, sample_ids)
    if scores.empty and comparisons.empty:
        raise PoolError(nothing_measured(sources, metric))
    with counting_bar() as bar:
        fitting = bar.add_task(f"ranking by {method}", total=None)
        replicates = bar.add_task("bootstrap over samples", total=bootstrap, visible=False)

        def advance(done: int) -> None:  # 0: the fit to all samples is done; then replicates
            bar.update(fitting, total=1, completed=1)
            bar.update(replicates, advance=done, visible=bootstrap > 0)

        board = aggregators.rank(
            scores if len(scores) else None,
            method,
            aggregators.DEFAULT_ALPHA if alpha is None else alpha,
            bootstrap,
            seed,
            comparisons=comparisons if len(comparisons) else None,
            ties=ties,
            progress=advance,
        )
    if alpha is not None and method not in aggregators.PL_METHODS:
        stderr.print(f"--alpha is the prior of the pl methods: {method} takes none, so it is not used", style="yellow")
    return board, scores, comparisons


def probe_pool(
    query: str, top_k: int | None, threshold: float | None, sources: list[str] | None, where: list[str] | None
) -> Any:
    """`harness.probe.probe` with the embedder if the `embed` extra is there (else BM25, said on stderr) and a
    progress bar while missing embeddings are computed."""
    from harness.probe import load_embedder, parse_where, probe

    embedder = load_embedder()
    if embedder is None:
        stderr.print("the embed extra is not installed: ranking samples by BM25 (lexical) instead", style="yellow")
    with counting_bar() as bar:
        task = bar.add_task("embedding samples", visible=False)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=True)

        return probe(
            open_pool(),
            query,
            top_k=top_k,
            threshold=threshold,
            sources=sources,
            where=parse_where(where or []),
            embedder=embedder,
            progress=advance,
        )


def selected_sample_ids(
    query: str | None,
    top_k: int | None,
    threshold: float | None,
    sources: list[str] | None,
    where: list[str] | None,
    exclude: Path | None = None,
) -> list[str] | None:
    """The sample ids to rank or compare on: those of `sources` that fit `query`, less those the file `exclude`
    lists (`excluded_sample_ids`), each said on stderr with its count; None for every sample of `sources`."""
    chosen = _probed_sample_ids(query, top_k, threshold, sources, where)
    if exclude is None:
        return chosen
    excluded = excluded_sample_ids(exclude)
    if chosen is None:
        found = open_pool().read_arrow("samples", sources=sources, columns=["sample_id"])["sample_id"]
        chosen = found.to_pylist()
    kept = [sample for sample in chosen if sample not in excluded]
    if not kept:
        raise PoolError(f"nothing left: {exclude} lists every selected sample")
    stderr.print(f"leaving out the {len(chosen) - len(kept):,} selected samples {exclude} lists")
    return kept


def excluded_sample_ids(path: Path) -> set[str]:
    """The `sample_id` column of a CSV, JSON lines or Parquet file (`contamination --out` writes one; when it
    finds nothing, a header alone); PoolError naming the file when it has none."""
    from tasks.files import read_rows, require_columns

    rows = read_rows(path, allow_empty=True)
    if rows.empty and list(rows.columns) == ["_line"]:  # JSON lines without a line: no column to ask for
        return set()
    require_columns(rows, path, ["sample_id"])
    return set(rows["sample_id"].astype(str))


def _probed_sample_ids(
    query: str | None, top_k: int | None, threshold: float | None, sources: list[str] | None, where: list[str] | None
) -> list[str] | None:
    """The sample ids that fit `query` (None without a query), said on stderr with their count."""
    if query is None:
        if top_k is not None or threshold is not None or where:
            raise PoolError("--top-k, --threshold and --where select samples for --query; give --query too")
        return None
    found = probe_pool(query, top_k, threshold, sources, where)
    if found.samples.empty:
        raise PoolError(f"nothing to rank for {query!r}: {none_reach(threshold, found.method)}")
    stderr.print(f"ranking on the {len(found.samples):,} samples that fit {query!r} ({found.method})")
    return found.samples["sample_id"].tolist()


def none_reach(threshold: float | None, method: str) -> str:
    """What a probe that found nothing says (only a threshold leaves nothing)."""
    return f"no samples reach --threshold {threshold} ({method})"


def clip(text: str, width: int) -> str:
    """`text` on one line (runs of whitespace as one space), cut to `width` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def print_probe(result: Any) -> None:
    """The probed samples as a table on stdout."""
    from rich.table import Table

    table = Table(title=f"samples that fit {result.query!r}", caption=result.method)
    for column in ("#", "similarity", "source", "text"):
        table.add_column(column, justify="right" if column in ("#", "similarity") else "left")
    for number, row in enumerate(result.samples.itertuples(index=False), start=1):
        table.add_row(str(number), f"{row.similarity:.3f}", row.source, clip(row.text, 100))
    stdout.print(table)


def leaderboard_json(board: Any) -> dict[str, Any]:
    """The documented JSON of `rank`: method, alpha (null for a method without a prior), models best first (NaN
    as null), diagnostics, and the notes a reader is told (`aggregators.board_notes`)."""
    import aggregators
    from aggregators import BOARD_COLUMNS as columns

    integers = ("rank", "rank_low", "rank_high", "n_samples")

    def plain(name: str, value: Any) -> Any:
        if name == "model":
            return str(value)
        if value != value:  # NaN
            return None
        return int(value) if name in integers else float(value)

    models = [{c: plain(c, row[c]) for c in columns} for _, row in board.iterrows()]
    return {
        "method": board.attrs["method"],
        "alpha": board.attrs["alpha"],
        "models": models,
        "diagnostics": board.attrs["diagnostics"],
        "notes": aggregators.board_notes(board),
    }


def print_leaderboard(board: Any) -> None:
    """The leaderboard as a table on stdout."""
    from rich.table import Table

    table = Table(title=f"poolbench leaderboard ({board.attrs['method']})", caption=f"scores: {board.attrs['score']}")
    for column in ("rank", "model", "score", "95% CI", "rank range", "samples"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for _, row in board.iterrows():
        has_ci = row.ci_low == row.ci_low
        ci = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" if has_ci else ""
        ranks = f"{int(row.rank_low)}-{int(row.rank_high)}" if has_ci else ""
        table.add_row(str(row["rank"]), str(row.model), f"{row.score:.3f}", ci, ranks, f"{row.n_samples:,}")
    stdout.print(table)


def show_workload(pool: Pool, spec: RunSpec, as_json: bool) -> None:
    """What a run of `spec` would evaluate (`runner.pending`, `runner.workload`), as a table or JSON on stdout;
    the plan's notes on stderr. Loads no model."""
    from rich.table import Table

    from harness.runner import pending, workload

    work = pending(pool, spec)
    for note in work.notes:
        stderr.print(f"note: {note}")
    per_source = workload(work.todo, spec)
    shard = f", shard {spec.shard}" if spec.shard else ""
    document = {
        "model": spec.model,
        "run_id": spec.run_id,
        "selected": work.selected,
        "measured": work.selected - len(work.todo),
        "to_evaluate": len(work.todo),
        "sources": per_source.to_dict(orient="records"),
    }
    if as_json:
        emit_json(document)
        return
    table = Table(
        title=f"{spec.model} (run {spec.run_id}{shard}): {document['to_evaluate']:,} of {work.selected:,} selected "
        "samples to evaluate",
        caption="a dry run: no model loaded, nothing written",
    )
    table.add_column("source")
    for title in WORKLOAD_COLUMNS.values():
        table.add_column(title, justify="right")
    total = {"source": "all", **per_source[list(WORKLOAD_COLUMNS)].sum()}
    for row in [*per_source.to_dict(orient="records"), total]:
        table.add_row(str(row["source"]), *(f"{int(row[key]):,}" for key in WORKLOAD_COLUMNS))
    stdout.print(table)


#: The dry run's table: `runner.workload`'s columns and their titles.
WORKLOAD_COLUMNS = {
    "samples": "samples",
    "loglikelihood_requests": "log-likelihoods",
    "rolling_requests": "rolling",
    "generations": "generations",
}


def print_runs(runs: list[dict[str, Any]]) -> None:
    """The pool's runs (`reporting.pool_runs`) as a table on stdout, then each failed run's error."""
    from rich.table import Table

    table = Table(title="runs", caption="values: measurements and comparisons that name the run")
    for column in ("run", "model", "backend", "settings", "status", "values", "started", "took"):
        table.add_column(column, justify="right" if column in ("values", "took") else "left")
    for run in runs:
        started = run["started_at"] or ""
        took = _took(run["started_at"], run["finished_at"])
        cells = (run["run"], run["model"], run["backend"], run["settings"], run["status"], f"{run['values']:,}")
        table.add_row(*cells, started.replace("T", " ").removesuffix("+00:00"), took)
    stdout.print(table)
    for run in runs:
        if run["error"]:
            stderr.print(
                f"{run['run']} ({run['model']}) {run['status']}: {run['error'].splitlines()[0]}", style="yellow"
            )


def _took(started: str | None, finished: str | None) -> str:
    """The time between two ISO timestamps as h:mm:ss, or "" when either is missing."""
    if not started or not finished:
        return ""
    from datetime import datetime

    seconds = int((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_board_notes(board: Any) -> None:
    """What a reader of the leaderboard is told beside it (`aggregators.board_notes`), on stderr."""
    import aggregators

    for note in aggregators.board_notes(board):
        stderr.print(note, style="yellow")


def write_junit(path: Path, document: dict[str, Any]) -> None:
    """JUnit XML: one test case per source plus the overall one (when there is an overall test, with what it
    could catch, `power`, as its output); a regression is a failure."""
    from xml.etree import ElementTree as ET

    overall = [{"source": "overall", **document}] if document["delta"] is not None else []
    cases = overall + list(document["by_source"])
    failures = sum(1 for c in cases if c["regression"])
    suite = ET.Element(
        "testsuite",
        name=f"poolbench compare {document['candidate']} vs {document['base']}",
        tests=str(len(cases)),
        failures=str(failures),
    )
    for index, case in enumerate(cases):
        element = ET.SubElement(suite, "testcase", classname="poolbench.compare", name=str(case["source"]))
        if index == 0 and overall and document.get("power"):
            ET.SubElement(element, "system-out").text = document["power"]
        if case["regression"]:
            failure = ET.SubElement(element, "failure", message="regression")
            failure.text = (
                f"delta {case['delta']:+.4f} [{case['ci_low']:+.4f}, {case['ci_high']:+.4f}], "
                f"p = {case.get('p_holm', case['p_value']):.3g} on {case['n_shared']} samples"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def write_comparison_html(path: Path, document: dict[str, Any]) -> None:
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


class Contamination(NamedTuple):
    """What `contamination` found: per source (`contamination.source_summary`), the overlapping samples
    (`contamination.overlap_table`), the corpus words scanned and the files they came from."""

    summary: Any
    samples: Any
    words_scanned: int
    files: list[str]


def find_contamination(corpus: list[str], sources: list[str] | None, n: int, text_field: str) -> Contamination:
    """`harness.contamination.scan` of the selected samples against the corpus (`corpus_files`; a bar counts its
    bytes). PoolError for a path that names no file or a pool without samples, before anything is read."""
    from harness.contamination import corpus_files, overlap_table, read_corpus, scan, source_summary

    files = corpus_files(corpus)
    samples = open_pool().read_arrow("samples", sources=sources, columns=["sample_id", "source", "text"]).to_pandas()
    if samples.empty:
        raise PoolError("no samples to check: the pool has none (`poolbench add` some)")
    with counting_bar(transient=True) as bar:
        task = bar.add_task(
            f"scanning {len(files):,} corpus file(s) (bytes) for {len(samples):,} samples",
            total=sum(size for _, size in files),
        )
        pieces = (piece for path, _ in files for piece in read_corpus(path, text_field))
        found = scan(samples["text"].tolist(), pieces, n, progress=lambda size: bar.advance(task, size))
    names = [path for path, _ in files]
    return Contamination(source_summary(samples, found), overlap_table(samples, found), found.words_scanned, names)


def print_contamination(found: Contamination, n: int, shown: int = 20) -> None:
    """The per-source summary, then the first `shown` overlapping samples, as tables on stdout."""
    from rich.table import Table

    summary, overlapping = found.summary, found.samples
    scanned = f"{found.words_scanned:,} corpus words scanned in {len(found.files):,} file(s)"
    table = Table(title=f"samples with a {n}-gram in the corpus", caption=scanned)
    for column in ("source", "samples", f"checked (>= {n} words)", "overlapping", "share of checked"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for row in summary.itertuples(index=False):
        share = f"{row.overlapping / row.checked:.1%}" if row.checked else ""
        table.add_row(row.source, f"{row.samples:,}", f"{row.checked:,}", f"{row.overlapping:,}", share)
    stdout.print(table)
    if overlapping.empty:
        return
    more = len(overlapping) - shown
    samples = Table(caption=f"and {more:,} more; --out FILE writes them all" if more > 0 else "--out FILE writes them")
    for column in ("source", "n-grams found", "first found in", "its words"):
        samples.add_column(column)
    for row in overlapping.head(shown).itertuples(index=False):
        samples.add_row(row.source, f"{row.matched} of {row.ngrams}", row.corpus, row.example)
    stdout.print(samples)


def audit_pool(
    sources: list[str] | None, metric: str | None, method: str, min_models: int, exclude: Path | None = None
) -> Any:
    """`aggregators.audit.discrimination` of the selected samples against `method`'s leaderboard, each tested
    sample with its source, id in its source, text and answer key (samples without text: empty)."""
    from aggregators.audit import discrimination
    from harness.plan import answer_text

    sample_ids = selected_sample_ids(None, None, None, sources, None, exclude)
    board, scores, _ = leaderboard(sources, method, None, 0, 0, metric, "both", sample_ids)
    table = discrimination(scores, board.set_index("model")["score"], min_models)
    if table.empty:
        raise PoolError(f"no sample is measured on {min_models} or more ranked models whose values differ there")
    samples = open_pool().samples(sample_ids=table["sample_id"].unique().tolist()).set_index("sample_id")
    about = samples.loc[table["sample_id"]]
    answers = [answer_text(row) if row["target"] not in (None, "null") else "" for _, row in about.iterrows()]
    return table.assign(
        source=about["source"].to_numpy(),
        source_id=about["source_id"].to_numpy(),
        text=about["prompt"].fillna("").to_numpy(),
        answer=answers,
    )


def print_audit(table: Any, fdr: float, top: int) -> None:
    """The `top` most suspect samples as a table on stdout, and how many are flagged at `fdr` on stderr."""
    from rich.table import Table

    from aggregators.audit import flagged_note

    shown = Table(
        title=f"the {min(top, len(table))} samples that run most against the ranking",
        caption="r: rank correlation of the models' values on the sample with their scores; q: Benjamini-Hochberg",
    )
    for column in ("source", "sample", "models", "r", "q", "question", "answer key"):
        shown.add_column(column, justify="right" if column in ("models", "r", "q") else "left")
    for row in table.head(top).itertuples(index=False):
        cells = (row.source, str(row.source_id), f"{row.n_models:,}", f"{row.r:+.2f}", f"{row.q_value:.3g}")
        shown.add_row(*cells, clip(row.text, 60), clip(row.answer, 30))
    stdout.print(shown)
    stderr.print(flagged_note(table, fdr))
