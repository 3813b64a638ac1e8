"""Renaming a model in every table of a pool: one model named two ways (by two sources) becomes one.

Each table that names models is rewritten whole (`SegmentStore.rewrite`), the latest row of each key kept. If
the rename is killed midway, some tables name the model the old way and some the new (one table can hold both
its old segments and the renamed one), and running it again completes it: the rows it renamed before are
identical to the ones it renames again. Rows another process writes for the old name meanwhile keep it, and
runs keep their ids (a run under the new name measures its samples again).
"""

from __future__ import annotations

import functools

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from harness.schema import KEYS, SCHEMAS, PoolError, name_list
from harness.store import SegmentStore

#: The columns of each table that name a model, in the order the tables are rewritten (referenced first).
MODEL_COLUMNS = {
    "models": ("model", "display_name"),
    "runs": ("model",),
    "responses": ("model",),
    "comparisons": ("model_a", "model_b"),
    "measurements": ("model",),
}


def rename_model(store: SegmentStore, old: str, new: str) -> dict[str, int]:
    """Give model `old` the name `new` in every table (`new` may be a model the pool holds: the two become
    one); return the rows renamed per table. PoolError, before anything is written, when `old` is in no table,
    `new` is empty or has spaces around it, the two were compared with each other (one model would be
    compared with itself), or a row of each has the same key (sample, metric, run, judge) and says otherwise
    (one of the two would be lost; rows that say the same become one row)."""
    if not new.strip() or new != new.strip() or new == old:
        raise PoolError(f"new name {new!r}: give another model name, not empty, without spaces around it")
    moved = {table: _renamed(_naming(store, table, old), columns, old, new) for table, columns in MODEL_COLUMNS.items()}
    if not any(rows.num_rows for rows in moved.values()):
        models = store.read("models", columns=["model"])["model"].to_pylist()
        raise PoolError(f"no model {old!r} in the pool; its models: {name_list(models)}")
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
            store.rewrite(table, functools.partial(_renamed, columns=MODEL_COLUMNS[table], old=old, new=new))
    return {table: rows.num_rows for table, rows in moved.items()}


def _naming(store: SegmentStore, table: str, model: str) -> pa.Table:
    """The rows of `table` that name `model`."""
    columns = MODEL_COLUMNS[table]
    return store.read(table, " OR ".join(f"{column} = ?" for column in columns), [model] * len(columns))


def _renamed(rows: pa.Table, columns: tuple[str, ...], old: str, new: str) -> pa.Table:
    """`rows` with `old` replaced by `new` in `columns`."""
    for column in columns:
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
