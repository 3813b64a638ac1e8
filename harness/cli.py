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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
