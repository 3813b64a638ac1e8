"""Append-only Parquet segments per table, read through DuckDB.

Layout of a pool directory::

    pool.json                     {"format": 1}
    <table>/seg-<ns>-<uuid>.parquet   one segment per write call, immutable
    <table>/tmp-<uuid>.partial        a write in progress (renamed into place when whole)
    quarantine/<table>/...            segments `check(quarantine=True)` moved aside

A write is one `os.replace` of a finished file, so readers see whole segments or nothing, and any number of
processes can append at once. A pool may also live on object storage, named by an fsspec URL
(`s3://bucket/pool`, `gs://...`, `az://...`; credentials and endpoint as the file system reads them, e.g.
AWS_ENDPOINT_URL): there a segment is one upload, which appears whole when it completes, and no temporary
file is written. Reads dedupe repeated keys (latest `created_at` wins, ties broken by segment
name); a table held in one segment has unique keys by construction and is read without that step.
Every segment costs a reader a file open, so `merge` replaces several by one (a run merges its batches'
segments when it ends; `compact` merges a whole table), removing them only once the merged one is whole.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness.schema import FORMAT_VERSION, KEYS, REQUIRED, SCHEMAS, TABLES, PoolError, first_line

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from upath import UPath

#: Where a pool or one of its files is: a local path, or a path on an fsspec file system (universal_pathlib's
#: UPath, which has Path's methods).
Location: TypeAlias = "Path | UPath"

SEGMENT_GLOB = "seg-*.parquet"


@dataclass(frozen=True)
class SegmentProblem:
    """An unreadable segment found by `check`."""

    path: Location
    error: str


#: Columns written without min/max statistics: content hashes, whose ranges prune nothing, and whose
#: statistics cost a write of 1M measurements 40% of its time.
NO_STATISTICS = frozenset({"sample_id", "content_id"})

#: Per-table Parquet compression (default zstd): embedding vectors barely compress, and uncompressed they
#: read 3x faster.
COMPRESSION = {"embeddings": "none"}

#: Rows the Parquet writer takes per step in the narrow, long tables (Arrow's default, used elsewhere: 1,024).
#: Bigger steps cut the per-step overhead (a write of 1M measurements: 0.074 s -> 0.061 s, median of 15);
#: a page closes after the step that fills it, so wide rows (texts, vectors) keep the default.
WRITE_BATCH_SIZE = {"measurements": 1 << 14, "comparisons": 1 << 14}

#: How often a read lists the segments again when one it listed was merged away meanwhile.
RELISTS = 10


class SegmentStore:
    """The directory of one pool: create/open it, append segments, read tables, check and compact."""

    def __init__(self, root: str | os.PathLike[str] | Location, create: bool = False) -> None:
        self.root = location(root)
        self._fs: AbstractFileSystem | None = None if isinstance(self.root, Path) else self.root.fs
        meta = self.root / "pool.json"
        if not meta.exists():
            if not create:
                raise PoolError(f"no pool at {self.root} (run `poolbench pool init` or pass --pool DIR)")
            self.root.mkdir(parents=True, exist_ok=True)
            _write_whole(meta, lambda target: target.write(json.dumps({"format": FORMAT_VERSION}).encode()))
        try:
            version = json.loads(meta.read_text())["format"]
        except (ValueError, KeyError) as err:
            raise PoolError(f"{meta}: not a pool description ({err})") from None
        if version > FORMAT_VERSION:
            raise PoolError(
                f"{meta}: pool format {version} is newer than this poolbench reads ({FORMAT_VERSION}); "
                "upgrade poolbench"
            )
        for table in TABLES:
            (self.root / table).mkdir(exist_ok=True)

    def segments(self, table: str) -> list[Location]:
        """The table's whole segments, oldest first."""
        self._forget_listings()
        return sorted((self.root / table).glob(SEGMENT_GLOB))

    def append(self, table: str, rows: pa.Table) -> Location | None:
        """Write `rows` (already normalized to the table's schema) as one new segment; None if empty."""
        if rows.num_rows == 0:
            return None
        rows = _fixed_width(rows)
        dictionary = [f.name for f in rows.schema if not pa.types.is_fixed_size_binary(f.type)]
        final = self.root / table / f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        _write_whole(
            final,
            lambda target: pq.write_table(
                rows,
                target,
                compression=COMPRESSION.get(table, "zstd"),
                use_dictionary=dictionary,
                write_statistics=[name for name in rows.column_names if name not in NO_STATISTICS],
                store_schema=False,
                write_batch_size=WRITE_BATCH_SIZE.get(table, 1024),
            ),
        )
        return final

    def _forget_listings(self) -> None:
        """Drop the listings an object store's file system caches, which hide segments other processes wrote or
        merged away since (s3fs, gcsfs and adlfs keep them)."""
        if self._fs is not None:
            self._fs.invalidate_cache()

    def read(
        self,
        table: str,
        where: str = "",
        params: Sequence[object] = (),
        columns: Sequence[str] | None = None,
        latest_by: Sequence[str] | None = None,
        segments: Sequence[Location] | None = None,
    ) -> pa.Table:
        """The table's logical rows (latest `created_at` per key) as Arrow, optionally filtered and projected.

        `where` is a DuckDB boolean expression over the table's columns with `?` placeholders for `params`;
        `columns` names the columns to return (all by default). `latest_by`, a part of the key, keeps one row
        per value of that part instead: the latest over the rest of the key (e.g. the latest run's measurement
        per sample, model and metric). `segments`: the table's segments as the caller listed them (`segments`),
        else listed here. A segment merged away (`merge`) between the listing and the read makes it list the
        segments again.
        """
        names = list(columns or SCHEMAS[table].names)
        key = tuple(latest_by or KEYS[table])
        files = list(segments) if segments is not None else self.segments(table)
        for _ in range(RELISTS):
            try:
                return self._read_files(table, files, names, where, params, key)
            except PoolError:
                if not self._any_gone(files):
                    raise
                files = self.segments(table)
        return self._read_files(table, files, names, where, params, key)

    def _read_files(
        self,
        table: str,
        files: Sequence[Location],
        names: list[str],
        where: str,
        params: Sequence[object],
        key: tuple[str, ...],
    ) -> pa.Table:
        """`read` over the given segments of `table`, the latest row per `key`."""
        schema = SCHEMAS[table]
        if not files:
            return schema.empty_table().select(names)
        unique = len(files) == 1 and key == KEYS[table]  # one segment holds each of its keys once
        if unique and not where:
            return self._read_segment(table, files[0], names)
        paths = [str(f) for f in files]
        scan = f"read_parquet({paths!r}, union_by_name=true)"
        if not unique:
            rest = [f"{column} DESC" for column in KEYS[table] if column not in key]  # so that reads repeat
            latest_first = ", ".join(["created_at DESC", "file_index DESC", *rest])  # files oldest first
            scan = (
                f"(SELECT * FROM {scan} QUALIFY row_number() OVER (PARTITION BY {', '.join(key)} "
                f"ORDER BY {latest_first}) = 1)"
            )
        query = f"SELECT {', '.join(names)} FROM {scan}" + (f" WHERE {where}" if where else "")
        try:
            with duckdb.connect() as con:
                if self._fs is not None:
                    con.register_filesystem(self._fs)
                result = con.sql(query, params=list(params)).to_arrow_table()
            return result.cast(pa.schema([schema.field(n) for n in names]))
        # The query is ours: DuckDB fails it only on the segments (bytes, columns, types) or the storage serving
        # them (its base Error wraps what an fsspec file system raises, e.g. for a segment merged away meanwhile).
        except (duckdb.Error, pa.ArrowInvalid) as err:
            raise _unreadable(self.root / table, err) from None

    def _read_segment(self, table: str, path: Location, names: list[str]) -> pa.Table:
        try:
            rows = read_parquet(path, names)
            return _variable_width(rows).cast(pa.schema([SCHEMAS[table].field(n) for n in names]))
        except (pa.ArrowException, OSError) as err:
            raise _unreadable(path, err) from None

    def check(self, quarantine: bool = False) -> list[SegmentProblem]:
        """Read every segment whole; return the unreadable ones (not Parquet, or without the table's columns
        and types), moved to quarantine/ if asked.

        Also removes `tmp-*.partial` files left by killed writers older than one hour.
        """
        problems = []
        for table in TABLES:
            for path in self.segments(table):
                try:
                    _conforming(table, read_parquet(path))
                except (pa.ArrowException, OSError) as err:
                    if path.exists():  # else merged away meanwhile
                        problems.append(SegmentProblem(path, first_line(err)))
            for tmp in (self.root / table).glob("tmp-*.partial"):
                with contextlib.suppress(FileNotFoundError):  # else renamed into place meanwhile
                    if time.time() - tmp.stat().st_mtime > 3600:
                        tmp.unlink()
        if quarantine:
            for problem in problems:
                target = self.root / "quarantine" / problem.path.parent.name
                target.mkdir(parents=True, exist_ok=True)
                problem.path.rename(str(target / problem.path.name))
        return problems

    def merge(self, table: str, files: Sequence[Location]) -> Location | None:
        """Replace `files`, segments of `table`, by one segment holding their logical rows (created_at kept);
        return it (None for fewer than two files). Segments written meanwhile are left alone; readers that
        listed the old segments list again (`read`). Nothing is lost if this is killed: the new segment is
        whole before the first old one goes, and a row in both is the same row. None, too, when a merge
        elsewhere (`pool compact`) took some of the files first: their rows are in its segment."""
        if len(files) < 2:
            return None
        return self._replace(table, files)

    def compact(self, table: str) -> None:
        """Merge all the table's segments into one."""
        self.merge(table, self.segments(table))

    def rewrite(self, table: str, change: Callable[[pa.Table], pa.Table]) -> None:
        """Replace all the table's segments by one holding `change` of their logical rows (as `merge` does,
        segments written meanwhile left alone); `change` must give at most one row per key (`latest_per_key`
        makes it so). Killed after the new segment is written and before the last old one goes, both hold
        rows: `change` must give the same rows when run again over them (a rename, a removal does)."""
        for _ in range(RELISTS):
            files = self.segments(table)
            if not files or self._replace(table, files, change) is not None:
                return
        raise PoolError(f"{self.root / table}: its segments kept being merged away meanwhile; run it again")

    def _replace(
        self, table: str, files: Sequence[Location], change: Callable[[pa.Table], pa.Table] | None = None
    ) -> Location | None:
        """`files`, segments of `table`, replaced by one segment of their logical rows, or of `change` of them;
        None when some of the files were merged away (by another process) before they were read."""
        try:
            rows = self._read_files(table, files, SCHEMAS[table].names, "", (), KEYS[table])
        except PoolError:
            if not self._any_gone(files):
                raise
            return None
        path = self.append(table, rows if change is None else change(rows))
        for old in files:
            old.unlink(missing_ok=True)
        return path

    def _any_gone(self, files: Sequence[Location]) -> bool:
        """Whether some of `files` no longer exist (merged away since they were listed)."""
        self._forget_listings()
        return not all(path.exists() for path in files)


def latest_per_key(table: str, rows: pa.Table) -> pa.Table:
    """The latest row (`created_at`, then position) of each key of `table` among `rows`."""
    order = pa.array(np.arange(rows.num_rows, dtype=np.int64))
    with duckdb.connect() as con:
        con.register("r", rows.append_column("row_order", order))
        latest = con.sql(
            f"SELECT * EXCLUDE (row_order) FROM r QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(KEYS[table])} ORDER BY created_at DESC, row_order DESC) = 1"
        ).to_arrow_table()
    return latest.cast(SCHEMAS[table])


def location(root: str | os.PathLike[str] | Location) -> Location:
    """A pool's location: a local path, or an fsspec URL's path (`file://` URLs as local paths)."""
    if not isinstance(root, str | os.PathLike):  # a UPath already
        return root
    text = os.fspath(root)
    if "://" not in text:
        return Path(text)
    from upath import UPath  # for URLs only: its first use costs 0.1 s

    remote = UPath(text)
    return Path(remote.path) if remote.protocol in ("file", "local") else remote


def _write_whole(final: Location, content: Callable[[BinaryIO], object]) -> None:
    """Make the file `final` from what `content` writes to a binary handle, whole or not at all: locally into
    a temporary file renamed into place once synced; elsewhere built in memory and stored by one `pipe_file`
    (one upload on object storage; a file system's own write handles may store part of a failed write)."""
    if not isinstance(final, Path):
        buffer = io.BytesIO()
        content(buffer)
        final.fs.pipe_file(final.path, buffer.getvalue())
        return
    tmp = final.with_name(f"tmp-{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as handle:
            content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def read_parquet(path: Location, columns: Sequence[str] | None = None) -> pa.Table:
    """One segment's rows as Arrow (local ones memory-mapped: segments never change once in place)."""
    if isinstance(path, Path):
        return pq.read_table(path, columns=columns, memory_map=True)
    return pq.read_table(path.path, columns=columns, filesystem=path.fs)


def _fixed_width(rows: pa.Table) -> pa.Table:
    """Binary columns whose values all have one length (embedding vectors) as fixed-size binary, no copy:
    Parquet stores those as one contiguous block, which reads 2.5x faster than length-prefixed values."""
    for index, field in enumerate(rows.schema):
        if not pa.types.is_binary(field.type) or not rows.num_rows or rows[index].null_count:
            continue
        column = rows[index].combine_chunks()
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
        widths = np.diff(offsets)
        if widths[0] > 0 and (widths == widths[0]).all():
            data = column.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
            fixed = pa.Array.from_buffers(pa.binary(int(widths[0])), len(column), [None, data])
            rows = rows.set_column(index, field.name, fixed)
    return rows


def _conforming(table: str, rows: pa.Table) -> None:
    """Raise ArrowInvalid unless a segment's `rows` have `table`'s key, required and `created_at` columns and
    each of the table's columns they have casts to its type."""
    names = rows.column_names
    missing = [name for name in (*KEYS[table], *REQUIRED[table], "created_at") if name not in names]
    if missing:
        raise pa.ArrowInvalid(f"no column {missing[0]!r} of table {table}")
    rows = _variable_width(rows)
    for field in SCHEMAS[table]:
        if field.name in names:
            rows[field.name].cast(field.type)


def _variable_width(rows: pa.Table) -> pa.Table:
    """`_fixed_width` undone, no copy: fixed-size binary columns as binary (offsets built, data shared;
    chunks of under 2 GiB, binary's limit)."""
    for index, field in enumerate(rows.schema):
        if pa.types.is_fixed_size_binary(field.type):
            width = field.type.byte_width
            step = max((2**31 - 1) // width, 1)
            chunks = [
                _binary_view(chunk.slice(start, step), width)
                for chunk in rows[index].chunks
                for start in range(0, len(chunk), step)
            ]
            rows = rows.set_column(index, field.name, pa.chunked_array(chunks, type=pa.binary()))
    return rows


def _binary_view(column: pa.Array, width: int) -> pa.Array:
    """A fixed-size binary array of `width`-byte values as binary over the same data buffer."""
    n = len(column)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    data = column.buffers()[1].slice(column.offset * width, n * width)
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, data])


def _unreadable(path: Location, err: BaseException) -> PoolError:
    return PoolError(f"{path}: unreadable segment ({first_line(err)}); run `poolbench pool check --quarantine`")
