"""The pool store: round trips, idempotent adds, atomic segments, concurrent writers, corrupt segments.

The tests of how segments are written, read, merged and checked run on a local directory and on object storage
(S3, served by moto's S3 server and reached through s3fs, as a bucket elsewhere would be); those that use the pool
from this process alone also on fsspec's in-process `memory://` file system."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from harness.pool import Pool
from harness.schema import FORMAT_VERSION, TABLES, PoolError, complete_samples, sample_id
from harness.store import SegmentStore, read_parquet

SAMPLES = pd.DataFrame(
    {
        "source": ["arith", "arith", "caps"],
        "source_id": ["a1", "a2", "c1"],
        "kind": ["multiple_choice", "multiple_choice", "generation"],
        "prompt": ["1+1=", "2+2=", "Capital of France?"],
        "choices": [["1", "2"], ["4", "5"], None],
        "target": [1, 0, ["Paris"]],
        "metadata": [{"subject": "math"}, {"subject": "math"}, {"subject": "geo"}],
    }
)


def where(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh pool's location: a local directory, a bucket on S3, or fsspec's in-process memory file system."""
    if kind == "s3":
        return request.getfixturevalue("s3_pool")
    return str(tmp_path / "pool") if kind == "local" else f"memory://{tmp_path.name}/pool"


@pytest.fixture(params=["local", "s3", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's pool goes, for tests that use it from this process alone."""
    return where(request.param, request, tmp_path)


@pytest.fixture(params=["local", "s3"])
def shared_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's pool goes, for tests that reach it from other processes too (not memory://)."""
    return where(request.param, request, tmp_path)


def make_pool(root: str | Path) -> tuple[Pool, list[str]]:
    pool = Pool(root, create=True)
    pool.add("samples", SAMPLES)
    return pool, pool.samples().sort_values("source_id")["sample_id"].tolist()


def every_table(ids: list[str]) -> dict[str, pd.DataFrame]:
    return {
        "measurements": pd.DataFrame({"sample_id": ids, "model": "m1", "metric": "acc", "value": [1.0, 0.0, 1.0]}),
        "comparisons": pd.DataFrame(
            {
                "sample_id": ids[:2],
                "model_a": "m1",
                "model_b": "m2",
                "judge": "human",
                "outcome": ["a", "tie"],
            }
        ),
        "responses": pd.DataFrame({"sample_id": ids, "model": "m1", "response": ['{"text": "x"}'] * 3}),
        "models": pd.DataFrame({"model": ["m1"], "backend": ["hf"], "args": ['{"pretrained": "x"}']}),
        "runs": pd.DataFrame({"run_id": ["r1"], "model": ["m1"], "config": ["{}"], "status": ["finished"]}),
        "embeddings": pd.DataFrame(
            {"sample_id": ids, "embedder": "e", "vector": [np.array([0.1, 0.2], "<f4").tobytes()] * 3}
        ),
    }


def test_sample_id_is_a_content_hash(tmp_path: Path) -> None:
    pool, ids = make_pool(tmp_path / "pool")
    assert sample_id("arith", "1+1=", ["1", "2"], 1) in ids
    again = pool.samples()
    assert (
        again.loc[again.source == "caps", "content_id"].iloc[0]
        != again.loc[again.source == "arith", "content_id"].iloc[0]
    )


def test_every_table_round_trips_and_readding_is_a_noop(root: str) -> None:
    pool, ids = make_pool(root)
    frames = every_table(ids)
    first = pool.write(frames)
    assert first["measurements"] == 3 and first["comparisons"] == 2
    second = pool.write(frames)
    assert all(n == 0 for n in second.values()), second
    assert pool.add("samples", SAMPLES) == 0
    assert pool.add("samples", pd.DataFrame({"source": [], "kind": [], "prompt": []})) == 0  # no rows: no error
    for table, frame in frames.items():
        stored = pool.read(table, models=["m1"])
        assert len(stored) == len(frame), table
        for column in frame.columns:
            got = stored.sort_values(list(stored.columns[:1]))[column].tolist()
            want = frame.sort_values(list(frame.columns[:1]))[column].tolist()
            assert sorted(map(str, got)) == sorted(map(str, want)), (table, column)
    # m2 came in through comparisons only and is registered, not refused.
    assert set(pool.read("models")["model"]) == {"m1", "m2"}
    assert pool.read("models").set_index("model").loc["m1", "backend"] == "hf"


def test_latest_created_at_wins_and_filters(root: str) -> None:
    pool, ids = make_pool(root)
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": [1.0, 1.0, 1.0]}))
    pool.add("measurements", pd.DataFrame({"sample_id": ids[:1], "model": "m1", "value": [0.0]}))
    values = pool.measurements().set_index("sample_id")["value"]
    assert values[ids[0]] == 0.0 and values[ids[1]] == 1.0 and len(values) == 3
    assert set(pool.measurements(sources=["caps"])["sample_id"]) == {ids[2]}
    with pytest.raises(PoolError, match="no source 'cap' in the pool; its sources: .*caps"):
        pool.measurements(sources=["caps", "cap"])
    assert len(pool.measurements(models=["nobody"])) == 0
    assert set(pool.samples(sample_ids=ids[:2])["sample_id"]) == set(ids[:2])
    # one name is that name, not its characters
    assert pool.measurements(sources="caps").equals(pool.measurements(sources=["caps"]))
    assert len(pool.measurements(models="m1")) == 3 and len(pool.samples(sample_ids=ids[0])) == 1
    assert pool.scores(sources="arith", models="m1").equals(pool.scores(sources=["arith"], models=["m1"]))
    assert len(pool.scores(sources="arith", models="m1")) == 2
    pool.store.compact("measurements")
    assert len(pool.store.segments("measurements")) == 1
    assert pool.measurements().set_index("sample_id")["value"].to_dict() == values.to_dict()


def test_a_measurement_without_a_metric_takes_its_samples(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    samples = SAMPLES.assign(metric=["acc", "acc", "exact_match"])
    ids = complete_samples(samples)["sample_id"].tolist()
    unnamed = pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0})  # in the same write as the samples
    pool.write({"samples": samples, "measurements": unnamed})
    named = pd.DataFrame({"sample_id": ids, "model": "m2", "metric": [None, "", "f1"], "value": 0.0})
    pool.add("measurements", named)  # from the pool's samples; a named metric stays
    metrics = pool.measurements().set_index(["model", "sample_id"])["metric"]
    assert metrics["m1"][ids].tolist() == ["acc", "acc", "exact_match"]
    assert metrics["m2"][ids].tolist() == ["acc", "acc", "f1"]
    assert len(pool.scores()) == 5  # all but m2's f1: each sample's own metric


def test_a_tie_in_created_at_goes_to_the_later_segment(root: str) -> None:
    pool, ids = make_pool(root)
    when = pd.Timestamp("2026-01-01", tz="UTC")
    for value in (1.0, 0.0, 0.5):
        pool.add(
            "measurements",
            pd.DataFrame({"sample_id": ids[:1], "model": "m1", "metric": "acc", "value": value, "created_at": when}),
        )
    assert len(pool.store.segments("measurements")) == 3
    assert pool.measurements()["value"].tolist() == [0.5]
    assert pool.scores()["value"].tolist() == [0.5]


def test_scores_keep_each_samples_primary_metric_and_the_latest_run(root: str) -> None:
    """`scores`: one value per (sample, model, metric), the latest of its runs, higher always better; alike on a
    pool of many segments and on the same pool compacted."""
    pool, ids = make_pool(root)
    pool.add("samples", pd.DataFrame({"source": "lm", "kind": "scored", "prompt": ["a", "b"], "metric": "perplexity"}))
    lm = pool.samples(sources=["lm"]).sort_values("prompt")["sample_id"].tolist()
    runs = [  # (run, sample, metric, value), written in this order
        ("old", ids[0], "acc", 1.0),
        ("old", ids[1], "acc", 1.0),
        ("old", lm[0], "perplexity", 9.0),
        ("new", ids[0], "acc", 0.0),  # a later run of m1 on ids[0]: wins over "old"
        ("new", ids[0], "f1", 0.5),  # not the sample's primary metric
        ("new", lm[1], "perplexity", 4.0),
        ("old", ids[1], "acc", 0.0),  # "old" again, later: wins over its own first value
    ]
    for run, sample, metric, value in runs:
        pool.add(
            "measurements",
            pd.DataFrame({"sample_id": [sample], "model": "m1", "run_id": run, "metric": metric, "value": value}),
        )
    expected = {(ids[0], "acc"): 0.0, (ids[1], "acc"): 0.0, (lm[0], "perplexity"): -9.0, (lm[1], "perplexity"): -4.0}
    for compacted in (False, True):
        if compacted:
            pool.store.compact("measurements")
        scores = pool.scores()
        assert scores.set_index(["sample_id", "metric"])["value"].to_dict() == expected
        assert scores.set_index("sample_id").loc[lm, "source"].tolist() == ["lm", "lm"]
        assert pool.scores(metric="f1")[["sample_id", "value"]].values.tolist() == [[ids[0], 0.5]]
        assert set(pool.scores(sources=["caps"])["sample_id"]) == set()  # ids[2] was never measured


def in_key_order(measurements: pd.DataFrame) -> pd.DataFrame:
    return measurements.sort_values(["sample_id", "model", "metric", "run_id"], ignore_index=True)


def test_merge_keeps_the_logical_rows_and_leaves_later_segments_alone(root: str) -> None:
    pool, ids = make_pool(root)
    for value in (1.0, 0.0):  # the second write of each key wins
        pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": value}))
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m2", "value": 1.0}))
    before = pool.measurements()
    first, second, later = pool.store.segments("measurements")
    merged = pool.store.merge("measurements", [first, second])
    assert pool.store.segments("measurements") == sorted([merged, later]) and not first.exists()
    assert read_parquet(merged).num_rows == 3  # the overwritten rows are gone
    pd.testing.assert_frame_equal(in_key_order(pool.measurements()), in_key_order(before))
    assert pool.store.merge("measurements", [later]) is None
    pool.store.compact("measurements")  # a merge elsewhere took the segments first: nothing to do, no error
    assert pool.store.merge("measurements", [merged, later]) is None
    pd.testing.assert_frame_equal(in_key_order(pool.measurements()), in_key_order(before))


class Killed(BaseException):
    """The process killed at that point (nothing after it runs)."""


def kill_after_writing(table: str, store: SegmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process killed (`Killed`) right after `store` wrote a segment of `table`."""
    append = store.append

    def killed_after(written_table: str, rows: pa.Table) -> object:
        written = append(written_table, rows)
        if written_table == table:
            raise Killed
        return written

    monkeypatch.setattr(store, "append", killed_after)


MODEL_COLUMNS = {"measurements": ["model"], "comparisons": ["model_a", "model_b"], "responses": ["model"]}


def test_rename_model_in_every_table_and_a_killed_rename_completes(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """m1 becomes m3, a model the pool holds: refused while the two have different values on one key (ids[0]),
    done when they have the same (one row). Killed after the responses' new segment was written and before
    the old one went, the pool names m1 in some tables and m3 in others, responses both ways; run again, the
    rename completes with every row once."""
    pool, ids = make_pool(root)
    pool.write(every_table(ids))
    pool.add("measurements", pd.DataFrame({"sample_id": ids[:1], "model": "m3", "value": 0.5}))
    m3_said = {"sample_id": ids[:1], "model_a": "m3", "model_b": "m2", "judge": "human"}  # m1 won it
    pool.add("comparisons", pd.DataFrame({**m3_said, "outcome": ["b"]}))
    segments = {table: pool.store.segments(table) for table in TABLES}
    with pytest.raises(PoolError, match="'m1' and 'm2' were compared with each other \\(2 comparisons\\)"):
        pool.rename_model("m1", "m2")
    with pytest.raises(PoolError, match="no model 'nobody' in the pool; its models: m1, m2, m3"):
        pool.rename_model("nobody", "m4")
    with pytest.raises(
        PoolError, match="'m1' and 'm3' have rows of the same sample, .* differ \\(1 comparisons, 1 measurements\\)"
    ):
        pool.rename_model("m1", "m3")
    assert {table: pool.store.segments(table) for table in TABLES} == segments  # refused before any write
    pool.add("measurements", pd.DataFrame({"sample_id": ids[:1], "model": "m3", "value": 1.0}))  # m1's value
    pool.add("comparisons", pd.DataFrame({**m3_said, "outcome": ["a"]}))  # m1's outcome
    kill_after_writing("responses", pool.store, monkeypatch)
    with pytest.raises(Killed):
        pool.rename_model("m1", "m3")
    monkeypatch.undo()
    assert sorted(pool.read("responses")["model"]) == ["m1"] * 3 + ["m3"] * 3
    assert set(pool.read("measurements")["model"]) == {"m1", "m3"}  # not reached
    renamed = pool.rename_model("m1", "m3")  # models and runs were renamed before the kill
    assert renamed == {"models": 0, "runs": 0, "responses": 3, "comparisons": 2, "measurements": 3}
    assert len(pool.read("comparisons")) == 2  # m3's and m1's verdict on ids[0], the same: one row
    for table, columns in MODEL_COLUMNS.items():
        rows = pool.read(table)
        assert "m1" not in set(rows[columns].to_numpy().ravel()) and len(pool.store.segments(table)) == 1
    measured = pool.read("measurements").set_index("sample_id")
    assert measured["model"].eq("m3").all() and measured.loc[ids, "value"].tolist() == [1.0, 0.0, 1.0]
    assert sorted(pool.read("responses")["model"]) == ["m3"] * 3
    assert pool.read("runs")["model"].tolist() == ["m3"] and sorted(pool.read("models")["model"]) == ["m2", "m3"]
    assert pool.stats()["models"] == 2 and pool.stats()["measurements"] == 3


def test_remove_models_and_a_source_and_a_killed_removal_completes(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing m1 takes every row that names it (its comparisons with m2 too), refused as a whole when one of
    the models named is unknown. Removing source arith takes its two samples and every row about them; killed
    after the measurements' new segment was written and before the old one went, nothing is lost or doubled,
    and run again, the removal completes (the samples, rewritten last, still name what to remove)."""
    pool, ids = make_pool(root)  # arith, arith, caps
    pool.write(every_table(ids))
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m2", "value": [0.0, 1.0, 0.0]}))
    segments = {table: pool.store.segments(table) for table in TABLES}
    with pytest.raises(PoolError, match="no model 'nobody' in the pool; its models: m1, m2$"):
        pool.remove_models(["m1", "nobody"])
    with pytest.raises(PoolError, match="no source 'nosuch' in the pool; its sources: arith, caps$"):
        pool.remove_source("nosuch")
    assert {table: pool.store.segments(table) for table in TABLES} == segments  # refused before any write
    removed = pool.remove_models("m1")
    assert removed == {"models": 1, "runs": 1, "responses": 3, "comparisons": 2, "measurements": 3}
    assert pool.read("measurements")["model"].tolist() == ["m2"] * 3 and pool.idle_models() == []
    for table in ("comparisons", "responses", "runs"):
        assert pool.read(table).empty, table
    assert pool.read("models")["model"].tolist() == ["m2"]  # registered by its measurements
    kill_after_writing("measurements", pool.store, monkeypatch)
    with pytest.raises(Killed):
        pool.remove_source("arith")
    monkeypatch.undo()
    assert sorted(pool.read("measurements")["sample_id"]) == sorted(ids) and len(pool.samples()) == 3
    assert pool.remove_source("arith") == {
        "measurements": 2,
        "responses": 0,
        "comparisons": 0,
        "embeddings": 2,
        "samples": 2,
    }
    for table in ("samples", "measurements", "embeddings"):
        assert pool.read(table)["sample_id"].tolist() == ids[2:] and len(pool.store.segments(table)) == 1, table
    assert pool.stats()["sources"] == {"caps": {"samples": 1, "measurements": 1}}


def test_reads_while_segments_are_merged_see_every_row_once(root: str) -> None:
    """A reader whose listing of segments a merge made stale lists them again: no error, nothing lost."""
    pool, ids = make_pool(root)
    pool.add(
        "measurements",
        pd.DataFrame({"sample_id": ids * 20, "model": np.repeat(range(20), 3).astype(str), "value": 1.0}),
    )
    expected = in_key_order(pool.measurements().drop(columns="created_at"))
    rows = pool.store.read("measurements")
    stop = threading.Event()
    rounds, reads, errors = 0, 0, []

    def split_and_merge() -> None:  # rewrite the rows as 8 segments (a logical no-op), merge them, again
        nonlocal rounds
        try:
            while not stop.is_set():
                for start in range(0, rows.num_rows, 8):
                    pool.store.append("measurements", rows.slice(start, 8))
                pool.store.compact("measurements")
                rounds += 1
                stop.wait(0.01)
        except Exception as error:  # noqa: BLE001 - the test reports it below
            errors.append(error)

    merger = threading.Thread(target=split_and_merge)
    merger.start()
    try:  # both sides go on until each has done its share, however fast either runs
        while (rounds < 20 or reads < 20) and merger.is_alive():
            pd.testing.assert_frame_equal(in_key_order(pool.measurements().drop(columns="created_at")), expected)
            reads += 1
    finally:
        stop.set()
        merger.join()
    assert errors == [] and rounds >= 20 and reads >= 20


@pytest.mark.parametrize(
    ("table", "frame", "message"),
    [
        ("measurements", {"sample_id": ["nope"], "model": ["m"], "value": [1.0]}, "not in the pool"),
        ("measurements", {"sample_id": ["ID0"], "model": ["m"], "value": [float("nan")]}, "finite"),
        ("measurements", {"sample_id": ["ID0"], "model": ["m"], "value": [float("inf")]}, "finite"),
        ("measurements", {"sample_id": ["ID0"], "model": ["m"], "value": [85.0]}, r"outside \[0, 1\]"),
        ("measurements", {"sample_id": ["ID0"], "model": ["m"], "metric": ["f1"], "value": [-0.5]}, "proportion"),
        ("measurements", {"sample_id": ["ID0", "ID0"], "model": ["m", " "], "value": [1.0, 0.0]}, "row 1"),
        ("measurements", {"sample_id": ["ID0"], "model": [" m"], "value": [1.0]}, "model with spaces around it"),
        ("samples", {"source": ["s\n"], "kind": ["generation"], "prompt": ["p"]}, "source with spaces around it"),
        ("samples", {"source": ["s"], "kind": ["essay"], "prompt": ["p"]}, "kind"),
        (
            "comparisons",
            {"sample_id": ["ID0"], "model_a": ["x"], "model_b": ["y"], "outcome": ["win"]},
            "outcome",
        ),
        ("measurements", {"sample_id": ["ID0"], "value": [1.0]}, "missing required column"),
    ],
)
def test_bad_rows_are_refused_whole(tmp_path: Path, table: str, frame: dict, message: str) -> None:
    pool, ids = make_pool(tmp_path / "pool")
    frame = {k: [ids[0] if v == "ID0" else v for v in vs] for k, vs in frame.items()}
    before = {t: len(pool.read(t)) for t in ("samples", "measurements", "comparisons", "models")}
    with pytest.raises(PoolError, match=message):
        pool.add(table, pd.DataFrame(frame))
    assert {t: len(pool.read(t)) for t in before} == before


def test_values_on_any_scale_are_kept_under_other_metrics(tmp_path: Path) -> None:
    pool, ids = make_pool(tmp_path / "pool")
    pool.add("measurements", pd.DataFrame({"sample_id": ids[0], "model": "m", "metric": "rubric", "value": [85.0]}))
    assert pool.measurements()["value"].tolist() == [85.0]


def test_write_is_all_or_nothing_across_tables(tmp_path: Path) -> None:
    pool, ids = make_pool(tmp_path / "pool")
    with pytest.raises(TypeError, match="measurements: rows as a pandas DataFrame, not a list"):  # was AttributeError
        pool.write({"measurements": [{"sample_id": ids[0], "model": "m1", "value": 1.0}]})
    good = pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0})
    bad = pd.DataFrame({"sample_id": ids[:1], "model_a": "a", "model_b": "a", "outcome": "a"})
    with pytest.raises(PoolError, match="itself"):
        pool.write({"measurements": good, "comparisons": bad})
    assert len(pool.measurements()) == 0 and len(pool.read("models")) == 0


def test_references_may_point_to_stored_samples_or_samples_of_the_same_write(tmp_path: Path) -> None:
    pool, ids = make_pool(tmp_path / "pool")
    new = pd.DataFrame({"source": "new", "kind": "generation", "prompt": ["fresh"]})
    new_id = sample_id("new", "fresh", None, None)
    both = pd.DataFrame({"sample_id": [ids[0], new_id], "model": "m1", "value": 1.0})
    responses = pd.DataFrame({"sample_id": [ids[1], new_id, "gone", "lost"], "model": "m1", "response": "{}"})
    with pytest.raises(PoolError, match=r"responses: sample_id 'gone' is not in the pool \(2 unknown"):
        pool.write({"samples": new, "measurements": both, "responses": responses})
    assert pool.write({"samples": new, "measurements": both, "responses": responses[:2]})["responses"] == 2
    assert set(pool.measurements()["sample_id"]) == {ids[0], new_id}


def test_a_write_that_fails_midway_leaves_nothing(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment whose writing raises halfway (a full disk, a lost connection) is not stored, in part or at all:
    on object storage, closing the upload would have stored what was written so far."""
    pool, ids = make_pool(root)
    files = sorted(str(path) for path in pool.path.rglob("*"))

    def fails_halfway(rows: pa.Table, target: BinaryIO, **options: object) -> None:
        target.write(b"PAR1" + bytes(1000))
        raise OSError("No space left on device")

    monkeypatch.setattr("pyarrow.parquet.write_table", fails_halfway)
    with pytest.raises(OSError, match="No space left"):
        pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0}))
    monkeypatch.undo()
    gc.collect()  # nor may a dropped upload's handle complete it when collected
    assert sorted(str(path) for path in pool.path.rglob("*")) == files  # no segment, no temporary file
    assert pool.measurements().empty and pool.read("models").empty


def test_a_writer_sees_the_samples_another_writer_added_since(root: str) -> None:
    """Each write checks its sample references (and takes their metrics) against the pool's samples, which a
    Pool reads once per listing of their segments: another writer's new or merged segments are read again."""
    pool, ids = make_pool(root)
    other = Pool(pool.path)
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0}))
    other.add("samples", pd.DataFrame({"source": "new", "kind": "scored", "prompt": ["later"], "metric": "bleu"}))
    (later,) = other.samples(sources="new")["sample_id"]
    pool.add("measurements", pd.DataFrame({"sample_id": [later], "model": "m1", "value": 0.25}))
    other.store.compact("samples")
    pool.add("measurements", pd.DataFrame({"sample_id": [later], "model": "m2", "value": 0.5}))
    measured = pool.measurements(sources="new").set_index("model")
    assert measured["metric"].to_dict() == {"m1": "bleu", "m2": "bleu"}
    assert measured["value"].to_dict() == {"m1": 0.25, "m2": 0.5}
    with pytest.raises(PoolError, match="'gone' is not in the pool"):
        pool.add("measurements", pd.DataFrame({"sample_id": ["gone"], "model": "m1", "value": 1.0}))


def test_a_runs_batch_lists_the_samples_segments_once(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's batch (measurements that name no metric, and responses) takes its metrics from the pool's samples
    and checks its references against them: one listing of their segments (a LIST request on object storage;
    was three on its first write, two after)."""
    pool, ids = make_pool(root)
    listed: list[str] = []
    segments = pool.store.segments
    monkeypatch.setattr(pool.store, "segments", lambda table: listed.append(table) or segments(table))
    key = {"sample_id": ids, "model": "m", "run_id": "r"}
    batch = {"measurements": pd.DataFrame({**key, "value": 1.0}), "responses": pd.DataFrame({**key, "response": "{}"})}
    assert pool.write(batch, known_new=True) == {"measurements": 3, "responses": 3, "models": 1}
    assert listed.count("samples") == 1


def test_binary_values_of_one_length_or_many_read_back_exactly(root: str) -> None:
    """Equal-length values are stored as fixed-size binary and read back as binary: alone (one segment),
    beside length-varying ones (segments merged by DuckDB) and after compaction."""
    pool, ids = make_pool(root)
    rng = np.random.default_rng(0)
    fixed = [rng.normal(size=4).astype("<f4").tobytes() for _ in ids]
    varying = [b"", b"\x00" * 3, rng.normal(size=5).astype("<f4").tobytes()]

    def stored() -> dict[tuple[str, str], bytes]:
        frame = pool.read("embeddings")
        return dict(zip(zip(frame["embedder"], frame["sample_id"], strict=True), frame["vector"], strict=True))

    pool.add("embeddings", pd.DataFrame({"sample_id": ids, "embedder": "fixed", "vector": fixed}))
    expected = {("fixed", i): v for i, v in zip(ids, fixed, strict=True)}
    assert stored() == expected
    (segment,) = pool.store.segments("embeddings")
    assert read_parquet(segment).schema.field("vector").type == pa.binary(16)  # fixed-size on disk
    assert pool.store.read("embeddings").schema.field("vector").type == pa.binary()
    pool.add("embeddings", pd.DataFrame({"sample_id": ids, "embedder": "varying", "vector": varying}))
    expected |= {("varying", i): v for i, v in zip(ids, varying, strict=True)}
    assert stored() == expected
    pool.store.compact("embeddings")
    assert stored() == expected and len(pool.store.segments("embeddings")) == 1


def test_newer_format_is_refused(root: str) -> None:
    pool, _ = make_pool(root)
    (pool.path / "pool.json").write_text(json.dumps({"format": FORMAT_VERSION + 1}))
    with pytest.raises(PoolError, match="newer"):
        Pool(pool.path)
    with pytest.raises(PoolError, match="no pool"):
        Pool(pool.path.parent / "elsewhere")


WRITER = """
import sys, numpy as np, pandas as pd
from harness.pool import Pool
pool = Pool(sys.argv[1])
ids = pool.samples()["sample_id"].tolist()
model, rows, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
frame = pd.DataFrame({"sample_id": np.tile(ids, rows // len(ids)),
                      "run_id": np.repeat([f"r{i}" for i in range(rows // len(ids))], len(ids)),
                      "model": model, "value": 1.0})
for start in range(0, rows, batch):
    pool.add("measurements", frame.iloc[start:start + batch])
print("done", flush=True)
"""


def seeded_pool(root: str, n_samples: int = 100) -> Pool:
    pool = Pool(root, create=True)
    pool.add(
        "samples",
        pd.DataFrame({"source": "s", "kind": "generation", "prompt": [f"p{i}" for i in range(n_samples)]}),
    )
    return pool


def test_two_processes_append_50k_each_at_once(shared_root: str) -> None:
    pool = seeded_pool(shared_root)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(pool.path), model, "50000", "5000"])
        for model in ("alpha", "beta")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    stored = pool.measurements()
    assert len(stored) == 100_000
    assert not stored.duplicated(["sample_id", "model", "metric", "run_id"]).any()
    assert stored.groupby("model").size().to_dict() == {"alpha": 50_000, "beta": 50_000}


def test_writer_killed_mid_write_leaves_only_whole_segments(shared_root: str, cli) -> None:
    pool = seeded_pool(shared_root)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(pool.path), "gamma", "2000000", "200000"])
    deadline = time.time() + 120
    while not pool.store.segments("measurements") and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    segments = pool.store.segments("measurements")
    assert segments, "the writer never finished a segment"
    stored = pool.measurements()
    assert len(stored) % 200_000 == 0 and len(stored) == 200_000 * len(segments)
    done = cli("pool", "stats", "--json", pool=pool.path, check=True)
    assert json.loads(done.stdout)["measurements"] == len(stored)
    assert cli("pool", "check", pool=pool.path).returncode == 0


def test_truncated_segment_is_named_and_quarantined(shared_root: str, cli) -> None:
    pool, ids = make_pool(shared_root)
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0}))
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m2", "value": 0.0}))
    victim = pool.store.segments("measurements")[1]
    victim.write_bytes(victim.read_bytes()[:40])
    stats = cli("pool", "stats", pool=pool.path)
    assert stats.returncode == 2 and "unreadable segment" in stats.stderr and len(stats.stderr.splitlines()) == 1
    check = cli("pool", "check", pool=pool.path)
    assert check.returncode == 1 and victim.name in check.stderr
    fixed = cli("pool", "check", "--quarantine", pool=pool.path)
    assert fixed.returncode == 0 and (pool.path / "quarantine" / "measurements" / victim.name).exists()
    stats = json.loads(cli("pool", "stats", "--json", pool=pool.path, check=True).stdout)
    assert stats["measurements"] == 3 and stats["samples"] == 3


def test_a_parquet_segment_without_the_tables_columns_or_types_is_found(root: str) -> None:
    """Parquet files, but not measurements: `check` names both (was: "all segments readable") and a read
    that cannot cast one points to `check` (was: DuckDB's error alone)."""
    pool, ids = make_pool(root)
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m1", "value": 1.0}))
    folder = pool.path / "measurements"
    foreign = folder / "seg-09999999999999999998-aaaaaaaaaaaa.parquet"
    pd.DataFrame({"foo": [1]}).to_parquet(str(foreign))
    texts = folder / "seg-09999999999999999999-aaaaaaaaaaab.parquet"
    row = {"sample_id": ids[0], "model": "m2", "metric": "acc", "run_id": "r", "value": "high"}
    pd.DataFrame([row]).assign(created_at=pd.Timestamp.now(tz="UTC")).to_parquet(str(texts))
    with pytest.raises(PoolError, match=r"'high' .* run `poolbench pool check --quarantine`"):
        pool.measurements()
    problems = {problem.path.name: problem.error for problem in pool.store.check(quarantine=True)}
    assert problems == {
        foreign.name: "no column 'sample_id' of table measurements",
        texts.name: "Failed to parse string: 'high' as a scalar of type double",
    }
    assert pool.measurements()["model"].tolist() == ["m1"] * 3
