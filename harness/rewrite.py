"""Rewriting a pool's tables: renaming a model (one model named two ways becomes one), removing models, or
removing samples (a source's: `Pool.remove_source`) with every row about them.

Each table that changes is rewritten whole (`SegmentStore.rewrite`), one row per key. If a
rewrite is killed midway, some tables have changed and some not (one table can hold both its old segments and
the new one), and running it again completes it: it finds what is left of the model or source and changes it
as before (a removal rewrites the samples last, so that it still finds them). Rows another process writes
meanwhile for the old name, the removed model or the source's samples are left as they are; a renamed model's
runs keep their ids (a run under the new name measures its samples again).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from harness.schema import KEYS, SCHEMAS, PoolError, distinct, name_list
from harness.store import SegmentStore, latest_per_key

#: The columns of each table that name a model, in the order the tables are rewritten (referenced first).
MODEL_COLUMNS = {
    "models": ("model",),
    "runs": ("model",),
    "responses": ("model",),
    "comparisons": ("model_a", "model_b"),
    "measurements": ("model",),
}
#: Columns that show a model's name without naming the model: renamed with it.
SHOWN = {"models": ("display_name",)}
#: The tables whose rows are about one sample, beside the samples.
SAMPLE_TABLES = ("measurements", "responses", "comparisons", "embeddings")


def rename_model(store: SegmentStore, old: str, new: str) -> dict[str, int]:
    """Give model `old` the name `new` in every table (`new` may be a model the pool holds: the two become
    one); return the rows renamed per table. PoolError, before anything is written, when `old` is in no table,
    `new` is empty or has spaces around it, the two were compared with each other (one model would be
    compared with itself), or a row of each has the same key (sample, metric, run, judge) and says otherwise
    (one of the two would be lost; rows that say the same become one row)."""
    if not new.strip() or new != new.strip() or new == old:
        raise PoolError(f"new name {new!r}: give another model name, not empty, without spaces around it")
    moved = {table: _renamed(_naming(store, table, old), table, old, new) for table in MODEL_COLUMNS}
    if not any(rows.num_rows for rows in moved.values()):
        raise _no_model(store, old)
    compared = moved["comparisons"]
    with_itself = pc.sum(pc.equal(compared["model_a"], compared["model_b"])).as_py() or 0
    if with_itself:
        raise PoolError(
            f"{old!r} and {new!r} were compared with each other ({with_itself:,} comparisons): as one model "
            "it would be compared with itself"
        )
    conflicts = {
        table: _conflicts(table, moved[table], _naming(store, table, new))
        for table in ("responses", "comparisons", "measurements")
    }
    if any(conflicts.values()):
        counted = ", ".join(f"{n:,} {table}" for table, n in conflicts.items() if n)
        raise PoolError(
            f"{old!r} and {new!r} have rows of the same sample, metric, run and judge that differ ({counted}): as "
            "one model it would keep one of each; rename it to another name"
        )
    for table, rows in moved.items():
        if rows.num_rows:
            store.rewrite(table, functools.partial(_renamed_once, table=table, old=old, new=new))
    return {table: rows.num_rows for table, rows in moved.items()}


def remove_models(store: SegmentStore, models: Sequence[str]) -> dict[str, int]:
    """Remove every row that names one of `models`: their measurements, responses, comparisons (with any
    model), runs and `models` rows; return the rows removed per table. PoolError, before anything is written,
    when one of them is in no table."""
    gone = pa.array(list(models), pa.string())
    naming = {table: _naming_any(store, table, gone) for table in MODEL_COLUMNS}
    named = set().union(*(names for _, names in naming.values()))
    missing = [model for model in models if model not in named]
    if missing:
        raise _no_model(store, missing[0])
    for table, (count, _) in naming.items():
        if count:
            store.rewrite(table, functools.partial(_without_models, table=table, models=gone))
    return {table: count for table, (count, _) in naming.items()}


def remove_samples(store: SegmentStore, ids: pa.Array) -> dict[str, int]:
    """Remove the samples `ids` and every row about them (measurements, responses, comparisons, embeddings);
    return the rows removed per table. The models stay, and their runs."""
    about = {
        table: pc.sum(pc.is_in(store.read(table, columns=["sample_id"])["sample_id"], ids)).as_py() or 0
        for table in SAMPLE_TABLES
    }
    counts = {**about, "samples": len(ids)}
    for table, count in counts.items():  # the samples last: a removal killed before them finds them again
        if count:
            store.rewrite(table, lambda rows: rows.filter(pc.invert(pc.is_in(rows["sample_id"], ids))))
    return counts


def _no_model(store: SegmentStore, model: str) -> PoolError:
    models = store.read("models", columns=["model"])["model"].to_pylist()
    return PoolError(f"no model {model!r} in the pool; its models: {name_list(models)}")


def _naming(store: SegmentStore, table: str, model: str) -> pa.Table:
    """The rows of `table` that name `model`."""
    columns = MODEL_COLUMNS[table]
    return store.read(table, " OR ".join(f"{column} = ?" for column in columns), [model] * len(columns))


def _naming_any(store: SegmentStore, table: str, models: pa.Array) -> tuple[int, set[str]]:
    """How many rows of `table` name one of `models`, and which of them the table names."""
    columns = MODEL_COLUMNS[table]
    rows = store.read(table, columns=list(columns))
    found = {name for column in columns for name in distinct(rows[column]).to_pylist()}
    return pc.sum(_names_any(rows, columns, models)).as_py() or 0, found & set(models.to_pylist())


def _names_any(rows: pa.Table, columns: tuple[str, ...], models: pa.Array) -> pa.ChunkedArray:
    """Whether each row names one of `models` in one of `columns`."""
    return functools.reduce(pc.or_, [pc.is_in(rows[column], models) for column in columns])


def _without_models(rows: pa.Table, table: str, models: pa.Array) -> pa.Table:
    """`rows` of `table` without those that name one of `models`."""
    return rows.filter(pc.invert(_names_any(rows, MODEL_COLUMNS[table], models)))


def _renamed_once(rows: pa.Table, table: str, old: str, new: str) -> pa.Table:
    """`_renamed` rows, the latest of each key kept (rows of `old` and `new` may share a key once renamed)."""
    return latest_per_key(table, _renamed(rows, table, old, new))


def _renamed(rows: pa.Table, table: str, old: str, new: str) -> pa.Table:
    """`rows` of `table` with `old` replaced by `new` where they name or show a model."""
    for column in MODEL_COLUMNS[table] + SHOWN.get(table, ()):
        values = rows[column]
        renamed = pc.if_else(pc.equal(values, old), new, values)
        rows = rows.set_column(rows.schema.get_field_index(column), column, renamed)
    return rows


def _conflicts(table: str, moved: pa.Table, staying: pa.Table) -> int:
    """How many of the renamed rows `moved` share their key with a row of `staying` (the new name's) that says
    otherwise (a value, an outcome, a response)."""
    key = KEYS[table]
    said = [column for column in SCHEMAS[table].names if column not in key and column != "created_at"]
    differs = " OR ".join(f"moved.{column} IS DISTINCT FROM staying.{column}" for column in said)
    with duckdb.connect() as con:
        con.register("moved", moved)
        con.register("staying", staying)
        query = f"SELECT count(*) FROM moved JOIN staying USING ({', '.join(key)}) WHERE {differs}"
        [(count,)] = con.execute(query).fetchall()
    return int(count)
