"""Which samples of the pool a text corpus contains: word n-gram overlap, as lm-eval's decontamination defines it.

A sample overlaps a corpus when one of its n-grams (13 words by default, lm-eval's and GPT-3's) occurs in one
of the corpus's documents. Words are what lm-eval's `Janitor` makes of a text: ASCII letters lower-cased,
ASCII punctuation deleted, split at whitespace. A sample's text is its prompt and choices (what `probe`
searches); one of fewer than n words has no n-gram and cannot be checked.

The corpus is streamed: its words are hashed in numpy batches and looked up among the samples' n-gram hashes;
a hash that matches is confirmed word by word, so a collision cannot make a false overlap.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd

from harness.schema import PoolError

NGRAM = 13
#: A plain text file is read in blocks of about this many bytes; n-grams across blocks are still found.
TEXT_BLOCK = 1 << 22
#: Words hashed and looked up at once.
BATCH_WORDS = 1 << 20
_NORMALIZE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: n-gram hashes mix their words' hashes in order
_BOM = "\ufeff".encode()  # a file's first line may start with it
SAMPLE_COLUMNS = ["sample_id", "source", "ngrams", "matched", "fraction", "corpus", "example"]


def words(text: str) -> list[str]:
    """The words n-grams are made of: ASCII letters lower-cased, ASCII punctuation deleted, split at whitespace."""
    return text.translate(_NORMALIZE).split()


@dataclass(frozen=True)
class Piece:
    """Text read from a corpus: `where` names its file and line or row; `continues`: it goes on from the
    previous piece (a plain text file's next block), so n-grams across the two count."""

    text: str
    where: str
    continues: bool = False
    size: int = 0  # bytes of its file read for it (compressed bytes for a compressed file), for a progress bar


def corpus_files(paths: list[str]) -> list[tuple[str, int]]:
    """The files `paths` name, with their sizes in bytes: a file, a folder's files (all levels down, by name,
    leaving out those whose name or folder's starts with "." or "_", such as `.git/` and `_SUCCESS`), a glob
    pattern's files (`*`, `?`, `[`); local paths or fsspec URLs. PoolError for a path that names no file."""
    import fsspec

    found: list[tuple[str, int]] = []
    for path in paths:
        fs, location = fsspec.core.url_to_fs(path)
        if any(c in location for c in "*?["):
            names, empty = sorted(name for name in fs.glob(location) if fs.isfile(name)), "no file matches"
        elif fs.isdir(location):
            names = sorted(n for n in fs.find(location) if not _hidden(PurePosixPath(n).relative_to(location)))
            empty = "a folder without files"
        elif fs.isfile(location):
            found.append((path, fs.size(location)))
            continue
        else:
            names, empty = [], "no such file"
        if not names:
            raise PoolError(f"{path}: {empty}")
        found += [(fs.unstrip_protocol(name) if "://" in path else name, fs.size(name)) for name in names]
    return found


def _hidden(path: PurePosixPath) -> bool:
    return any(part.startswith((".", "_")) for part in path.parts)


def read_corpus(path: str, text_field: str = "text") -> Iterator[Piece]:
    """The documents of a corpus file (local or an fsspec URL; compressed as its name says: `.gz`, `.bz2`,
    `.xz`, `.zst`): JSON lines (`.jsonl`, `.json`: each object's `text_field`), Parquet (the column
    `text_field`), else plain text (the file is one document). PoolError naming the file and line for what
    cannot be read."""
    import fsspec
    from fsspec.compression import compr
    from fsspec.utils import infer_compression

    codec = infer_compression(path)
    name = PurePosixPath(path).name
    kind = PurePosixPath(name[: -len(PurePosixPath(name).suffix)] if codec else name).suffix
    fs, location = fsspec.core.url_to_fs(path)
    with fs.open(location, "rb") as raw:
        if kind == ".parquet" and not codec:
            yield from _parquet(raw, path, text_field, fs.size(location))
            return
        handle = compr[codec](raw, mode="rb") if codec else raw
        lines = _json_lines(handle, path, text_field) if kind in (".jsonl", ".json") else _text(handle, path)
        read = 0
        for piece in lines:
            yield Piece(piece.text, piece.where, piece.continues, raw.tell() - read)
            read = raw.tell()


def _json_lines(handle: Iterable[bytes], path: str, text_field: str) -> Iterator[Piece]:
    for number, line in enumerate(handle, start=1):
        where = f"{path}:{number}"
        line = line.removeprefix(_BOM) if number == 1 else line
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise PoolError(f"{where}: not a JSON object ({err})") from None
        if not isinstance(record, dict):
            raise PoolError(f"{where}: not a JSON object (JSON lines: one object per line)")
        if text_field not in record:
            fields = ", ".join(map(str, record))
            raise PoolError(f"{where}: no field {text_field!r} (fields: {fields}); name the text's with --text-field")
        text = record[text_field]
        if text is not None and not isinstance(text, str):
            raise PoolError(f"{where}: field {text_field!r} is {type(text).__name__}, not text")
        yield Piece(text or "", where)


def _parquet(handle: BinaryIO, path: str, text_field: str, size: int) -> Iterator[Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(handle)
    except pa.ArrowException as err:
        raise PoolError(f"{path}: not a Parquet file ({err})") from None
    names = reader.schema_arrow.names
    if text_field not in names:
        raise PoolError(f"{path}: no column {text_field!r} (columns: {', '.join(names)}); name it with --text-field")
    per_row = size // max(reader.metadata.num_rows, 1)
    row = 0
    for batch in reader.iter_batches(columns=[text_field]):
        for text in batch.column(0).to_pylist():
            row += 1
            yield Piece(text or "", f"{path}: row {row}", size=per_row)


def _text(handle: Iterable[bytes], path: str) -> Iterator[Piece]:
    block: list[str] = []
    length, start, continues = 0, 1, False
    for number, raw in enumerate(handle, start=1):
        try:
            block.append((raw.removeprefix(_BOM) if number == 1 else raw).decode("utf-8"))
        except UnicodeDecodeError as err:
            raise PoolError(f"{path}:{number}: not UTF-8 ({err.reason})") from None
        length += len(raw)
        if length >= TEXT_BLOCK:
            yield Piece("".join(block), f"{path}:{start}", continues)
            block, length, start, continues = [], 0, number + 1, True
    if block:
        yield Piece("".join(block), f"{path}:{start}", continues)


def _hashes(tokens: list[str]) -> np.ndarray:
    """Each word's hash (Python's: the same within one process, which is all a lookup needs)."""
    return np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)


def _ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of each run of n consecutive words (none when there are fewer than n)."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    combined = word_hashes[:count].copy()
    for k in range(1, n):
        combined *= _MULTIPLIER
        combined += word_hashes[k : k + count]
    return combined


@dataclass
class _Ngrams:
    """The n-grams within each of some documents (lists of words), none across two: `hashes[i]` is the n-gram
    of `tokens` (the documents' words, one after another) that starts at `starts[i]`, in document
    `document[i]`."""

    tokens: list[str]
    hashes: np.ndarray
    starts: np.ndarray
    document: np.ndarray

    @classmethod
    def of(cls, documents: list[list[str]], n: int) -> _Ngrams:
        tokens = [w for d in documents for w in d]
        document = np.repeat(np.arange(len(documents)), [len(d) for d in documents])
        hashes = _ngram_hashes(_hashes(tokens), n)
        starts = np.flatnonzero(document[: len(hashes)] == document[n - 1 :])
        return cls(tokens, hashes[starts], starts, document[starts])


class _SampleIndex:
    """The samples' n-grams sorted by hash (`keys[i]` is n-gram `position[i]` of sample `owner[i]`), and a
    bitmap of their hashes' top bits that rejects almost every corpus n-gram before the binary search."""

    def __init__(self, texts: list[str], n: int) -> None:
        self.words = [words(t) for t in texts]
        grams = _Ngrams.of(self.words, n)
        order = np.argsort(grams.hashes, kind="stable")
        offsets = np.cumsum([0] + [len(w) for w in self.words])
        self.keys = grams.hashes[order]
        self.owner = grams.document[order]
        self.position = (grams.starts - offsets[grams.document])[order]
        self.shift = np.uint64(64 - max(16, int(len(self.keys) * 8).bit_length()))  # >= 8 slots per key
        self.bitmap = np.zeros(1 << (64 - int(self.shift)), dtype=bool)
        self.bitmap[self.keys >> self.shift] = True

    def candidates(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which of `hashes` are among the keys, and the range of keys each of them equals."""
        maybe = np.flatnonzero(self.bitmap[hashes >> self.shift])
        low = np.searchsorted(self.keys, hashes[maybe], side="left")
        high = np.searchsorted(self.keys, hashes[maybe], side="right")
        found = high > low
        return maybe[found], low[found], high[found]


@dataclass
class Overlap:
    """What a scan found: for each sample, its n-grams and which of them the corpus holds, and where the first
    one was found."""

    n: int
    ngrams: np.ndarray
    matched: list[set[int]]
    first: dict[int, tuple[str, str]] = field(default_factory=dict)  # sample -> (where, the n-gram's words)
    words_scanned: int = 0

    def overlapping(self) -> np.ndarray:
        """Indices of the samples at least one of whose n-grams the corpus holds."""
        return np.array(sorted(self.first), dtype=np.int64)


class _Scanner:
    """Looks a stream of corpus words up among the samples' n-grams, a batch at a time."""

    def __init__(self, index: _SampleIndex, n: int) -> None:
        self.index, self.n = index, n
        self.found = Overlap(n, np.array([max(len(w) - n + 1, 0) for w in index.words]), [set() for _ in index.words])
        self.batch: list[list[str]] = []
        self.places: list[str] = []
        self.batch_words = 0
        self.carry: list[str] = []

    def add(self, piece: Piece) -> None:
        tokens = words(piece.text)
        self.found.words_scanned += len(tokens)
        if piece.continues:
            tokens = self.carry + tokens
        self.carry = tokens[len(tokens) - self.n + 1 :] if self.n > 1 else []
        if len(tokens) >= self.n:
            self.batch.append(tokens)
            self.places.append(piece.where)
            self.batch_words += len(tokens)
        if self.batch_words >= BATCH_WORDS:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        grams = _Ngrams.of(self.batch, self.n)
        index = self.index
        for i, low, high in zip(*index.candidates(grams.hashes), strict=True):
            start = grams.starts[i]
            gram = grams.tokens[start : start + self.n]
            for k in range(low, high):
                sample, position = int(index.owner[k]), int(index.position[k])
                if index.words[sample][position : position + self.n] == gram:
                    self.found.matched[sample].add(position)
                    self.found.first.setdefault(sample, (self.places[grams.document[i]], " ".join(gram)))
        self.batch, self.places, self.batch_words = [], [], 0


def scan(
    texts: list[str], pieces: Iterable[Piece], n: int = NGRAM, progress: Callable[[int], None] | None = None
) -> Overlap:
    """Which of `texts` (the samples' texts) have n-grams in the corpus `pieces` (from read_corpus);
    `progress` is called with each piece's size."""
    if n < 1:
        raise ValueError(f"an n-gram has at least one word, not {n}")
    scanner = _Scanner(_SampleIndex(texts, n), n)
    for piece in pieces:
        scanner.add(piece)
        if progress is not None:
            progress(piece.size)
    scanner.flush()
    return scanner.found


def overlap_table(samples: pd.DataFrame, found: Overlap) -> pd.DataFrame:
    """One row per overlapping sample of `samples` (`sample_id` and `source`, in the order of the texts scanned):
    its n-grams, how many the corpus holds and their fraction, where the first was found and its words."""
    rows = []
    for i in found.overlapping():
        where, example = found.first[int(i)]
        rows.append(
            {
                "sample_id": samples["sample_id"].iat[i],
                "source": samples["source"].iat[i],
                "ngrams": int(found.ngrams[i]),
                "matched": len(found.matched[i]),
                "fraction": len(found.matched[i]) / found.ngrams[i],
                "corpus": where,
                "example": example,
            }
        )
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def source_summary(samples: pd.DataFrame, found: Overlap) -> pd.DataFrame:
    """Per source: samples, those long enough to check (at least one n-gram), those that overlap."""
    flags = pd.DataFrame(
        {
            "source": samples["source"].to_numpy(),
            "checked": found.ngrams > 0,
            "overlapping": np.isin(np.arange(len(samples)), found.overlapping()),
        }
    )
    summary = flags.groupby("source", sort=True).agg(
        samples=("checked", "size"), checked=("checked", "sum"), overlapping=("overlapping", "sum")
    )
    return summary.reset_index()
