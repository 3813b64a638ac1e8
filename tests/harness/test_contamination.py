"""N-gram overlap of samples with a corpus, against lm-eval's own decontamination n-grams (its `Janitor`'s
normalization and `word_ngrams`), and the --exclude-samples that leaves the overlapping samples out."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aggregators
from harness import contamination
from harness.contamination import Piece, read_corpus, scan
from harness.pool import Pool
from harness.schema import PoolError

VOCABULARY = [f"w{i}" for i in range(40)] + ["The", "A,", "b.", "—", "...", "Ünï", "x-y", "(C)"]


def lm_eval_overlap(texts: list[str], documents: list[str], n: int) -> list[set[str]]:
    """Each text's n-grams that some document holds, as lm-eval's decontamination makes them."""
    from lm_eval.decontamination.janitor import Janitor, word_ngrams

    janitor = Janitor(ngram_n=n)
    corpus: set[str] = set()
    for document in documents:
        corpus.update(word_ngrams(janitor.normalize_string(document), n))
    return [set(word_ngrams(janitor.normalize_string(t), n)) & corpus for t in texts]


def found_ngrams(texts: list[str], found: contamination.Overlap) -> list[set[str]]:
    """The scan's matched n-grams of each text, as strings."""
    n = found.n
    return [
        {" ".join(contamination.words(t)[p : p + n]) for p in positions}
        for t, positions in zip(texts, found.matched, strict=True)
    ]


def random_texts(rng: random.Random, count: int, longest: int) -> list[str]:
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(0, longest))) for _ in range(count)]


@pytest.mark.parametrize("n", [1, 3, 13])
def test_scan_finds_the_ngrams_lm_eval_finds(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random texts with punctuation, case and non-ASCII words; some documents hold samples shouted or padded;
    batches of a few words, so that documents straddle them: the matched n-grams are lm-eval's."""
    monkeypatch.setattr(contamination, "BATCH_WORDS", 50)
    rng = random.Random(n)
    texts = random_texts(rng, 200, 40)
    documents = random_texts(rng, 200, 100) + [f"(intro) {t.upper()}!! tail" for t in texts[:15]]
    found = scan(texts, (Piece(d, f"doc {i}") for i, d in enumerate(documents)), n)
    expected = lm_eval_overlap(texts, documents, n)
    assert found_ngrams(texts, found) == expected
    assert sum(map(bool, expected)) >= sum(len(contamination.words(t)) >= n for t in texts[:15]) > 5
    assert list(found.overlapping()) == [i for i, e in enumerate(expected) if e]
    assert list(found.ngrams) == [max(len(contamination.words(t)) - n + 1, 0) for t in texts]
    assert found.words_scanned == sum(len(contamination.words(d)) for d in documents)


def test_a_hash_collision_makes_no_false_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every word hashed alike, every n-gram's hash matches: the word-by-word check keeps lm-eval's answer."""
    monkeypatch.setattr(contamination, "_hashes", lambda tokens: np.zeros(len(tokens), dtype=np.uint64))
    rng = random.Random(7)
    texts, documents = random_texts(rng, 60, 20), random_texts(rng, 60, 60) + ["w1 w2 w3 w4"]
    found = scan(texts, (Piece(d, "") for d in documents), 3)
    assert found_ngrams(texts, found) == lm_eval_overlap(texts, documents, 3)


def test_by_hand_documents_and_continued_text() -> None:
    """Worked by hand: "The cat sat on the mat." has the 3-grams "the cat sat", "cat sat on", "sat on the",
    "on the mat"; a document "THE CAT, sat!" holds the first; an n-gram split across two documents is not found,
    across two pieces of one text it is."""
    text = "The cat sat on the mat."
    found = scan([text], [Piece("THE CAT, sat!", "a"), Piece("on the", "b"), Piece("mat", "c")], 3)
    assert (found.ngrams[0], found.matched[0], found.first[0]) == (4, {0}, ("a", "the cat sat"))
    continued = scan([text], [Piece("on the", "b"), Piece("mat", "c", continues=True)], 3)
    assert continued.matched[0] == {3} and continued.first[0] == ("c", "on the mat")  # where it ends
    short = scan(["two words"], [Piece("two words", "a")], 3)
    assert short.ngrams[0] == 0 and not short.first


def test_corpus_formats_read_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same documents as JSON lines, gzipped JSON lines and Parquet, and as plain text read in blocks of
    a few lines (n-grams across blocks found): the same overlap, the file and line named; a byte order mark
    is no part of the first word."""
    monkeypatch.setattr(contamination, "TEXT_BLOCK", 40)
    rng = random.Random(3)
    texts = random_texts(rng, 100, 30)
    documents = random_texts(rng, 30, 60) + [texts[i].upper() for i in range(0, 100, 7)]
    records = "\ufeff" + "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(documents))
    (tmp_path / "c.jsonl").write_text(records, encoding="utf-8")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(records.encode()))
    pq.write_table(pa.table({"text": documents}), tmp_path / "c.parquet")
    (tmp_path / "c.txt").write_text("\n".join(documents), encoding="utf-8-sig")
    expected = lm_eval_overlap(texts, documents, 5)
    for name in ("c.jsonl", "c.jsonl.gz", "c.parquet"):
        found = scan(texts, read_corpus(str(tmp_path / name)), 5)
        assert found_ngrams(texts, found) == expected, name
    first = scan(texts, read_corpus(str(tmp_path / "c.jsonl")), 5).first
    assert all(where.startswith(f"{tmp_path / 'c.jsonl'}:") for where, _ in first.values())
    blocks = list(read_corpus(str(tmp_path / "c.txt")))
    assert len(blocks) > 10 and [b.continues for b in blocks] == [False] + [True] * (len(blocks) - 1)
    assert "".join(b.text for b in blocks) == (tmp_path / "c.txt").read_text(encoding="utf-8-sig")
    as_text = scan(texts, iter(blocks), 5)
    assert found_ngrams(texts, as_text) == lm_eval_overlap(texts, ["\n".join(documents)], 5)
    assert sum(piece.size for piece in read_corpus(str(tmp_path / "c.jsonl.gz"))) == len(
        gzip.compress(records.encode())
    )


def test_corpus_files_of_folders_globs_and_urls(tmp_path: Path) -> None:
    """A folder's files at every level (by name; hidden ones, those in `.git/` and `_SUCCESS` left out), a glob's, an fsspec
    URL's (fsspec's in-process `memory://` file system) named as URLs; a path naming no file is an error."""
    import fsspec

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / ".git").mkdir()
    files = {"x.jsonl": '{"text": "a b"}\n', "sub/y.txt": "c d e", "_SUCCESS": "", ".seen": "f", ".git/HEAD": "g"}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    assert contamination.corpus_files([str(folder)]) == [(str(folder / "sub/y.txt"), 5), (str(folder / "x.jsonl"), 16)]
    assert contamination.corpus_files([str(folder / "*.jsonl"), str(folder / "x.jsonl")]) == [
        (str(folder / "x.jsonl"), 16),
        (str(folder / "x.jsonl"), 16),
    ]
    memory, root = fsspec.filesystem("memory"), f"/corpus-{uuid.uuid4().hex}"
    memory.pipe({f"{root}/1.jsonl": b'{"text": "g h"}\n', f"{root}/2.jsonl": b'{"text": "i"}\n'})
    try:
        urls = contamination.corpus_files([f"memory://{root}"])
        assert urls == [(f"memory://{root}/1.jsonl", 16), (f"memory://{root}/2.jsonl", 14)]
        assert [piece.text for url, _ in urls for piece in read_corpus(url)] == ["g h", "i"]
    finally:
        memory.rm(root, recursive=True)
    (tmp_path / "empty").mkdir()
    for path, message in [
        ("nowhere.txt", "no such file"),
        ("*.none", "no file matches"),
        ("empty", "a folder without"),
    ]:
        with pytest.raises(PoolError, match=f"{path}: {message}".replace("*", r"\*")):
            contamination.corpus_files([str(tmp_path / path)])


def test_unreadable_corpora_name_the_file_and_line(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    no_field = tmp_path / "other.jsonl"
    no_field.write_text('{"text": "fine"}\n\n{"body": "x"}\n', encoding="utf-8")
    not_text = tmp_path / "number.jsonl"
    not_text.write_text('{"text": 3}\n', encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "c.parquet")
    cases = {
        bad_json: f"{bad_json}:2: not a JSON object",
        no_field: f"{no_field}:3: no field 'text' (fields: body); name the text's with --text-field",
        not_text: f"{not_text}:1: field 'text' is int, not text",
        latin: f"{latin}:1: not UTF-8",
        tmp_path / "c.parquet": f"{tmp_path / 'c.parquet'}: no column 'text' (columns: body)",
    }
    for path, message in cases.items():
        with pytest.raises(PoolError) as error:
            list(read_corpus(str(path)))
        assert str(error.value).startswith(message)


def test_contamination_then_rank_and_compare_without_it(cli, shared_data: Path, tmp_path: Path) -> None:
    """LLMFAO's real prompts (as documents) and the starter tasks in a pool, two baselines measured; the corpus:
    LLMFAO's prompts file itself and a gzipped file holding some starter questions. The overlapping samples are
    lm-eval's; rank, compare and report leave them out as --exclude-samples asks; a corpus holding none of the
    samples writes a header alone, which leaves nothing out."""
    prompts = shared_data / "llmfao" / "prompts.jsonl"
    cli(
        "add", "jsonl", str(prompts), "--source", "llmfao", "--kind", "document", "--question-field", "text", check=True
    )
    cli("add", "starter", check=True)
    for model in ("random", "longest"):
        cli("run", "--model", f"baseline-{model}", "--name", model, "--no-progress", check=True)
    samples = Pool(tmp_path / "pool").samples()
    quoted = samples[samples["source"] == "starter/capitals"]["text"].head(12).tolist()
    quotes = [f"Q: {t.upper()}" for t in quoted]
    shouted = tmp_path / "quotes.jsonl.gz"
    shouted.write_bytes(gzip.compress("".join(json.dumps({"body": q}) + "\n" for q in quotes).encode()))
    documents = [json.loads(line)["text"] for line in prompts.read_text(encoding="utf-8").splitlines()]
    expected = lm_eval_overlap(samples["text"].tolist(), documents + quotes, 8)
    flagged = set(samples["sample_id"][[bool(e) for e in expected]])

    wrong_field = cli("contamination", str(prompts), str(shouted), "--ngram", "8")
    assert wrong_field.returncode == 2 and f"{shouted}:1: no field 'text' (fields: body)" in wrong_field.stderr
    missing = cli("contamination", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 2 and f"{tmp_path / 'nowhere.jsonl'}: no such file" in missing.stderr
    (tmp_path / "body").mkdir()
    (tmp_path / "body" / "prompts.jsonl").write_text(
        "".join(json.dumps({"body": d}) + "\n" for d in documents), encoding="utf-8"
    )
    out = tmp_path / "overlap.csv"
    corpus = [str(tmp_path / "body" / "prompts.jsonl"), str(shouted), "--text-field", "body", "--ngram", "8"]
    done = cli("contamination", *corpus, "--out", str(out), "--json", check=True)
    report = json.loads(done.stdout)
    listed = pd.read_csv(out)
    assert set(listed["sample_id"]) == {s["sample_id"] for s in report["samples"]} == flagged
    assert len(flagged) >= 12 + 10 and set(listed["source"]) == {"llmfao", "starter/capitals"}
    by_source = {row["source"]: row for row in report["sources"]}
    assert by_source["starter/capitals"]["overlapping"] == 12 and by_source["llmfao"]["samples"] == 19
    assert report["words_scanned"] == sum(len(contamination.words(d)) for d in documents + quotes)

    ranked = json.loads(cli("rank", "--method", "mean", "--exclude-samples", str(out), "--json", check=True).stdout)
    scores = Pool(tmp_path / "pool").scores()
    oracle = aggregators.rank(scores[~scores["sample_id"].isin(flagged)], "mean")
    assert [(m["model"], m["score"], m["n_samples"]) for m in ranked["models"]] == list(
        oracle[["model", "score", "n_samples"]].itertuples(index=False, name=None)
    )
    assert ranked["excluded"] == {"file": str(out), "n_samples": len(samples) - len(flagged)}
    compared = cli("compare", "random", "longest", "--exclude-samples", str(out), "--json")
    verdict = json.loads(compared.stdout)
    measured = scores[scores["model"] == "random"]["sample_id"]
    assert verdict["n_shared"] == len(set(measured) - flagged) and compared.returncode == int(verdict["regression"])
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--bootstrap", "0", "--exclude-samples", str(out), check=True)
    assert f"the samples {out} lists ({len(samples) - len(flagged):,} samples left)" in page.read_text(encoding="utf-8")
    nothing = tmp_path / "nothing.csv"  # a corpus that holds none of the samples: a header alone
    cli("contamination", str(prompts), "--source", "starter/units", "--ngram", "8", "--out", str(nothing), check=True)
    assert pd.read_csv(nothing).empty and list(pd.read_csv(nothing).columns) == contamination.SAMPLE_COLUMNS
    everything = cli("rank", "--method", "mean", "--exclude-samples", str(nothing), "--json", check=True).stdout
    assert json.loads(everything)["models"] == json.loads(cli("rank", "--method", "mean", "--json").stdout)["models"]
    no_column = tmp_path / "ids.csv"
    no_column.write_text("id\nx\n", encoding="utf-8")
    refused = cli("rank", "--exclude-samples", str(no_column))
    assert refused.returncode == 2 and f"{no_column}: missing required field 'sample_id'" in refused.stderr
