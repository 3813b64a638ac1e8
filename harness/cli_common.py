"""What every poolbench command shares: the pool it works on, error handling, JSON output, options."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.backends import AUTO
from harness.plan import Shard
from harness.pool import Pool
from harness.schema import PoolError

#: The consoles of the command line. No markup: model names, paths and queries such as "llama[4bit]" print as
#: they are (rich would read them as style tags, or fail on them).
stdout = Console(markup=False)
stderr = Console(stderr=True, markup=False, soft_wrap=True)  # soft wrap: a message stays one line
F = TypeVar("F", bound=Callable[..., Any])
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class State:
    pool: str = "pool"


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
        except BrokenPipeError:  # the reader went away (`| head`): click stops quietly
            raise
        except (PoolError, ValueError, OSError, KeyError) as err:
            message = str(err) if not isinstance(err, KeyError) else f"missing {err}"
            fail(message.strip().splitlines()[0] if message.strip() else type(err).__name__)

    return wrapper  # type: ignore[return-value]


def open_pool(create: bool = False) -> Pool:
    """The pool named by --pool / $POOLBENCH_POOL / ./pool; PoolError for a `memory://` one, which would be
    gone when the command ends."""
    if State.pool.startswith("memory://"):
        raise PoolError(
            f"{State.pool}: fsspec's memory file system lives inside one Python process, so this command's pool "
            "would be gone when it ends; give a folder or an object store's URL (s3://bucket/pool)"
        )
    return Pool(State.pool, create=create)


def emit_json(document: object) -> None:
    """The one JSON document a `--json` command prints."""
    sys.stdout.write(json.dumps(document, indent=2, default=float) + "\n")


def ingest(batch: dict[str, Any], what: str) -> None:
    """Write an adapter's or importer's tables to the pool (all or nothing) and say what landed, and the
    notes an importer left in its measurements' `attrs["notes"]`."""
    written = open_pool(create=True).write(batch)
    summary = ", ".join(f"{n:,} {t}" for t, n in written.items() if n)
    stderr.print(f"{what}: {summary or 'nothing new (already in the pool)'}")
    measurements = batch.get("measurements")
    for note in [] if measurements is None else measurements.attrs.get("notes", []):
        stderr.print(f"{what}: {note}")


def counting_bar(transient: bool = False) -> Progress:
    """Progress bars on stderr: each task's description, bar, done/total (? while unknown: it pulses), time left;
    `transient`: gone when done, and shown only on a terminal (elsewhere rich would leave an empty line)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=transient,
        disable=transient and not stderr.is_terminal,
    )


Location = TypeVar("Location", Path, str)


def import_files(paths: list[Location], read: Callable[[Location], dict[str, Any]], what: str) -> None:
    """Read every file with `read` (a bar counts them) before writing any, so that one bad file lands nothing;
    then ingest each file's tables."""
    with counting_bar(transient=True) as bar:
        task = bar.add_task(f"reading {what}", total=len(paths))
        batches = []
        for path in paths:
            batches.append(read(path))
            bar.advance(task)
    for path, batch in zip(paths, batches, strict=True):
        ingest(batch, str(path))


def write_html(out: Path, html: str) -> None:
    """Write a page atomically (no temporary file left behind) and say where it is."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    size = len(html.encode())
    amount = f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"
    stderr.print(f"report written to {out} ({amount})")


def write_sample_list(out: Path, samples: Any, what: str) -> None:
    """Write `samples` (a DataFrame with a `sample_id` column) as CSV for `--exclude-samples`, and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    samples.to_csv(out, index=False, lineterminator="\n")
    stderr.print(f"{len(samples):,} {what} samples written to {out} (rank --exclude-samples {out})")


def set_pool(pool: str | None) -> None:
    """--pool, else $POOLBENCH_POOL, else ./pool: a directory, or an fsspec URL (kept a string: Path would fold
    its `//`)."""
    State.pool = pool or os.environ.get("POOLBENCH_POOL") or "pool"


def pool_name(value: str | None) -> str | None:
    """A name the pool keeps (a model's, a source's), stripped as the names read from files are; refused by the
    option parser when empty (None: the option was not given)."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("empty: give the name the pool should know it by")
    return value.strip()


def batch_size_option(text: str) -> str:
    """`--batch-size`: a positive integer or `auto`, refused by the option parser otherwise."""
    if text != AUTO and not (text.isdigit() and int(text) >= 1):
        raise typer.BadParameter(f"{text!r} is neither a positive integer nor {AUTO}")
    return text


def shard_option(text: str) -> Shard:
    """`--shard K/N` as a Shard, refused by the option parser when it is not one."""
    try:
        return Shard.parse(text)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


def regular_expression(value: str | None) -> str | None:
    """An option's regular expression, refused by the option parser when it does not compile."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise typer.BadParameter(f"{value!r} is no regular expression: {err}") from None
    return value


AnswerPatternOpt = Annotated[
    str | None,
    typer.Option(callback=regular_expression, help="Regex extracting a generated answer (its first group)."),
]
SourceOpt = Annotated[
    str, typer.Option("--source", callback=pool_name, help="Name of the source the samples belong to.")
]
QueryOpt = Annotated[str | None, typer.Option(help="Only the samples that fit this question (see `probe`).")]
TopKOpt = Annotated[int | None, typer.Option(help="Probe: the K most similar samples (default 50).")]
ThresholdOpt = Annotated[float | None, typer.Option(help="Probe: samples at least this similar.")]
WhereOpt = Annotated[
    list[str] | None, typer.Option("--where", help="Probe: KEY=VALUE on a sample column or metadata field.")
]
ExcludeOpt = Annotated[
    Path | None,
    typer.Option(
        "--exclude-samples",
        dir_okay=False,
        help="Leave out the samples a CSV, JSON lines or Parquet file lists in its sample_id column "
        "(`contamination --out` writes one).",
    ),
]
SourcesOpt = Annotated[list[str] | None, typer.Option("--source", help="Only these sources (repeatable).")]
#: aggregators' DEFAULT_METHOD, METHODS and orderings.TIE_MODES, spelled out so that the CLI starts without
#: importing scipy (a test checks they agree).
Method = Literal["pl-conditional", "pl", "mean", "bt", "elo", "borda"]
TieMode = Literal["both", "half"]
DEFAULT_METHOD: Method = "pl-conditional"
MethodOpt = Annotated[Method, typer.Option(help="How to rank.")]
AlphaOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0, help="Gaussian prior on log-strengths of the pl methods (default 0.01; 0 = maximum likelihood)."
    ),
]
BootstrapOpt = Annotated[int, typer.Option(min=0, help="Bootstrap replicates over samples for 95% intervals.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")]
MetricOpt = Annotated[str | None, typer.Option(help="This metric instead of each sample's own.")]
TiesOpt = Annotated[TieMode, typer.Option(help="Tied comparisons: a win each way (both) or half.")]
