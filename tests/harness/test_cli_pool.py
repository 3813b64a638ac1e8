"""`poolbench pool ...`: the documented JSON shape, defaults and errors."""

from __future__ import annotations

import inspect
import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pandas as pd
import pyarrow.parquet as pq

from harness.cli_data import CROWDED_SEGMENTS
from harness.pool import Pool
from harness.schema import normalize


def test_stats_of_an_empty_pool_is_zeros_in_the_documented_shape(cli) -> None:
    cli("pool", "init", check=True)
    done = cli("pool", "stats", "--json", check=True)
    assert json.loads(done.stdout) == {
        "samples": 0,
        "models": 0,
        "measurements": 0,
        "comparisons": 0,
        "sources": {},
    }


def test_an_empty_pool_says_what_to_do_first(cli) -> None:
    """rank, compare and report on a pool without samples, then without measurements, say which step comes
    next (they said "no measurements of the samples' own metric ... for the selected samples")."""
    cli("pool", "init", check=True)
    assert cli("pool", "stats", check=True).stdout.splitlines()[-1].split() == ["segments:", "none"]
    empty = "the pool is empty (`poolbench add` samples, then `poolbench run` a model; or `poolbench import` results)"
    unmeasured = "no model is measured yet (`poolbench run` one, or `poolbench import` results)"
    for why in (empty, unmeasured):
        for command in (["rank"], ["compare", "a", "b"], ["report", "--out", "r.html"]):
            done = cli(*command)
            verb = "compare" if command[0] == "compare" else "rank"
            assert done.returncode == 2 and done.stderr == f"poolbench: error: nothing to {verb}: {why}\n", done.stderr
        cli("add", "starter", "capitals", check=True)


def test_missing_pool_is_one_line_and_exit_2(cli, tmp_path: Path) -> None:
    done = cli("pool", "stats", pool=tmp_path / "absent")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "no pool" in done.stderr
    assert not (tmp_path / "absent").exists()


def test_a_pool_in_memory_is_refused_by_the_command_line(cli) -> None:
    """fsspec's memory file system dies with the process: `pool init` would report a pool that is gone (was:
    created, then "no pool at memory://scratch" from the next command)."""
    for command in (("pool", "init"), ("rank",)):
        done = cli(*command, pool="memory://scratch")
        assert done.returncode == 2 and "lives inside one Python process" in done.stderr, done.stderr


def test_pool_env_var_is_the_default(tmp_path: Path) -> None:
    env = {**os.environ, "POOLBENCH_POOL": str(tmp_path / "from-env")}
    subprocess.run([sys.executable, "-m", "harness.cli", "pool", "init"], env=env, check=True)
    assert (tmp_path / "from-env" / "pool.json").exists()


def test_stats_compact_export(cli, tmp_path: Path) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", pd.DataFrame({"source": ["a", "a", "b"], "kind": "generation", "prompt": ["x", "y", "z"]}))
    ids = pool.samples().sort_values("prompt")["sample_id"].tolist()
    pool.add("measurements", pd.DataFrame({"sample_id": ids[:2], "model": "m", "value": [1.0, 0.0]}))
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "n", "value": [0.5, 0.5, 0.5]}))
    stats = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    assert stats == {
        "samples": 3,
        "models": 2,
        "measurements": 5,
        "comparisons": 0,
        "sources": {"a": {"samples": 2, "measurements": 4}, "b": {"samples": 1, "measurements": 1}},
    }
    before = cli("pool", "stats", check=True)
    assert "segments: samples 1, measurements 2, models 2" in before.stdout and not before.stderr
    cli("pool", "compact", check=True)
    assert len(pool.store.segments("measurements")) == 1
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout) == stats
    cli("pool", "export", str(tmp_path / "out"), check=True)
    assert pq.read_table(tmp_path / "out" / "measurements.parquet").num_rows == 5
    onto_a_file = cli("pool", "export", str(tmp_path / "out" / "measurements.parquet"))
    assert onto_a_file.returncode == 2 and "measurements.parquet is a file: name a folder" in onto_a_file.stderr
    vote = pd.DataFrame({"sample_id": ids[:1], "model_a": "m", "model_b": "n", "outcome": "a"})
    vote_row = normalize("comparisons", vote, pd.Timestamp.now(tz="UTC"))
    for _ in range(CROWDED_SEGMENTS):  # as many as a killed run of 32,000 samples leaves
        pool.store.append("comparisons", vote_row)
    crowded = cli("pool", "stats", check=True)
    assert f"measurements 1, comparisons {CROWDED_SEGMENTS}" in crowded.stdout
    assert f"many segments in comparisons ({CROWDED_SEGMENTS})" in crowded.stderr


def test_cli_choices_are_the_librarys() -> None:
    import aggregators
    from aggregators.audit import FDR, MIN_MODELS
    from aggregators.orderings import TIE_MODES
    from harness import cli, cli_common, cli_data
    from harness.runner import MULTIPLE_CHOICE
    from tasks.local import KINDS

    assert cli_common.DEFAULT_METHOD == aggregators.DEFAULT_METHOD
    assert sorted(get_args(cli_common.Method)) == sorted(aggregators.METHODS)
    assert get_args(cli_common.TieMode) == TIE_MODES
    assert get_args(cli_data.Kind) == KINDS
    assert get_args(cli.MultipleChoice) == MULTIPLE_CHOICE
    assert (cli.AUDIT_MIN_MODELS, cli.AUDIT_FDR) == (MIN_MODELS, FDR)


def test_names_with_brackets_print_as_they_are(cli, tmp_path: Path) -> None:
    """Rich would read 'gpt[/]' or '[bold]q[/bold]' as style tags (and fail on the first): no markup anywhere."""
    names = ["llama[4bit]", "[bold]q[/bold]", "gpt[/]"]
    matrix = tmp_path / "m[1].csv"
    pd.DataFrame({"id": ["q1", "q2", "q3"], **{n: [1, 0, 1] for n in names}}).to_csv(matrix, index=False)
    imported = cli("import", "matrix", str(matrix), "--source", "s[x]", check=True)
    assert f"{matrix}: 3 models" in imported.stderr
    board = cli("rank", "--method", "mean", check=True).stdout
    assert all(f" {name} " in board for name in names) and "scores: mean values" in board, board
    cli("add", "starter", "units", check=True)
    # on a terminal, where the run draws its progress bar (named after the model)
    command = [sys.executable, "-m", "harness.cli", "--pool", str(tmp_path / "pool"), "run", "--model"]
    command += ["baseline-random", "--name", "gpt[/]", "--limit", "3", "--source", "starter/units"]
    returncode, terminal = run_on_a_terminal(command)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal)  # without the terminal's colours
    assert returncode == 0 and "gpt[/] ━" in plain and "gpt[/]: 3 samples evaluated" in plain, plain


def run_on_a_terminal(command: list[str]) -> tuple[int, str]:
    """Run `command` with its stderr on a pseudo-terminal; its exit code and what the terminal showed.
    A command silent for 600 s is killed (the test then fails on its exit code)."""
    leader, follower = os.openpty()
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower) as process:
        os.close(follower)
        shown = b""
        while True:
            if not select.select([leader], [], [], 600)[0]:
                process.kill()
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        returncode = process.wait(timeout=60)
    os.close(leader)
    return returncode, shown.decode(errors="replace")


def test_version_names_poolbench_and_what_shapes_its_numbers(cli) -> None:
    from importlib import metadata

    done = cli("--version", check=True)
    assert done.stdout.startswith(f"poolbench {metadata.version('poolbench')}, lm_eval {metadata.version('lm_eval')}")


def test_every_command_summary_is_one_line_of_the_command_lists() -> None:
    """Typer's rich command lists keep a line break inside a docstring's first paragraph: none may have one."""
    import typer.main

    from harness.cli import app

    def commands(group: Any, path: str) -> list[tuple[str, str]]:
        found = []
        for name, command in group.commands.items():
            found.append((f"{path} {name}", command.help or ""))
            if hasattr(command, "commands"):
                found += commands(command, f"{path} {name}")
        return found

    listed = commands(typer.main.get_command(app), "poolbench")
    assert len(listed) > 20
    broken = [name for name, text in listed if "\n" in inspect.cleandoc(text).split("\n\n")[0]]
    assert broken == []


def test_a_pool_on_s3_holds_and_ranks_what_one_on_disk_does(cli, s3_pool: str, shared_data: Path) -> None:
    """`--pool s3://...`: ChemBench imported, a model run (and rerun: nothing to do), compacted, checked and ranked
    on S3 as on disk; the files are in the bucket (a Path would have folded the URL into a local folder "s3:")."""
    import s3fs

    matrix = str(shared_data / "chembench_binary" / "binary_matrix.csv")
    run = ("run", "--model", "baseline-random", "--name", "random", "--limit", "5", "--source", "starter/units")
    boards = {}
    for pool in (s3_pool, None):  # None: the test's folder
        cli("import", "matrix", matrix, "--source", "chembench", pool=pool, check=True)
        cli("add", "starter", "units", pool=pool, check=True)
        cli(*run, pool=pool, check=True)
        boards[pool] = json.loads(cli("rank", "--json", pool=pool, check=True).stdout)["models"]
    stored = s3fs.S3FileSystem().find(s3_pool)
    assert f"{s3_pool.removeprefix('s3://')}/pool.json" in stored
    assert {Path(name).parent.name for name in stored if name.endswith(".parquet")} >= {"samples", "measurements"}
    assert not Path("s3:").exists()
    assert boards[s3_pool] == boards[None] and len(boards[None]) == 23
    rerun = cli(*run, pool=s3_pool, check=True)
    assert "0 samples evaluated, 5 already measured" in rerun.stderr
    local = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    cli("pool", "compact", pool=s3_pool, check=True)
    assert json.loads(cli("pool", "stats", "--json", pool=s3_pool, check=True).stdout) == local
    assert local["models"] == 23 and local["sources"]["chembench"]["measurements"] == 22 * 2854
    assert "all segments readable" in cli("pool", "check", pool=s3_pool, check=True).stderr
    assert json.loads(cli("rank", "--json", pool=s3_pool, check=True).stdout)["models"] == boards[None]


def test_rename_model_joins_a_model_two_sources_name_two_ways(cli, shared_data: Path, tmp_path: Path) -> None:
    """ChemBench's "GPT-4" is LLMFAO's "GPT 4": until the rename no sample compares the two sources' models (a
    note says so); after it, one model holds both sources' values and the ranking is one connected whole."""
    matrix = shared_data / "chembench_binary" / "binary_matrix.csv"
    crowd = shared_data / "llmfao" / "crowd-comparisons.csv"
    cli("import", "matrix", str(matrix), "--source", "chembench", check=True)
    cli("import", "pairwise", str(crowd), "--source", "llmfao", "--model-a", "left", "--model-b", "right", check=True)
    before = json.loads(cli("rank", "--json", check=True).stdout)
    assert [len(group) for group in before["diagnostics"]["groups"]] == [59, 22]
    assert before["notes"][0].startswith("no sample compares these groups of models with one another: 59 (")
    alike = "'GPT 4' and 'GPT-4', 'LLaMA-2-Chat (70B)' and 'Llama-2-70B Chat'"
    assert before["notes"][0].endswith(f"(pool rename-model; named alike in different groups: {alike})")
    stats = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    compared = cli("pool", "rename-model", "GPT 4", "Weaver 12k")  # LLMFAO's crowd compared these two
    assert compared.returncode == 2 and "'GPT 4' and 'Weaver 12k' were compared with each other (52 " in compared.stderr
    unknown = cli("pool", "rename-model", "GPT4", "GPT-4")
    assert unknown.returncode == 2 and "no model 'GPT4' in the pool; its models: Airoboros L2 70B," in unknown.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout) == stats  # nothing written
    done = cli("pool", "rename-model", "GPT 4", "GPT-4", check=True)
    assert "renamed 'GPT 4' to 'GPT-4' (merged with it): rows models 1, comparisons 158" in done.stderr
    after = json.loads(cli("rank", "--json", check=True).stdout)
    assert after["diagnostics"]["groups"] == [] and not any("no sample compares" in n for n in after["notes"])
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout) == {**stats, "models": 80}
    models = {row["model"]: row for row in after["models"]}
    assert "GPT 4" not in models and models["GPT-4"]["n_samples"] == 2854 + 13  # its questions and prompts
    pool = Pool(tmp_path / "pool")
    crowd_rows = pd.read_csv(crowd)
    assert (pool.comparisons()[["model_a", "model_b"]] == "GPT-4").to_numpy().sum() == 158
    assert ((crowd_rows[["left", "right"]] == "GPT 4").to_numpy().sum()) == 158


def test_remove_a_source_and_the_models_it_leaves_with_nothing(cli, shared_data: Path, tmp_path: Path) -> None:
    """Removing LLMFAO from a pool with ChemBench asks first (no answer, or "n": nothing removed), then takes
    its prompts and comparisons and names the 59 models measured only there; removing two of them takes
    their rows, the others stay until removed too."""
    matrix = shared_data / "chembench_binary" / "binary_matrix.csv"
    crowd = shared_data / "llmfao" / "crowd-comparisons.csv"
    cli("import", "matrix", str(matrix), "--source", "chembench", check=True)
    cli("import", "pairwise", str(crowd), "--source", "llmfao", "--model-a", "left", "--model-b", "right", check=True)
    stats = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    for answer in ("n\n", ""):
        kept = cli("pool", "remove-source", "llmfao", stdin=answer)
        assert kept.returncode == 1 and "remove source 'llmfao', its samples and every result on them" in kept.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout) == stats
    removed = cli("pool", "remove-source", "llmfao ", "--yes", check=True)  # stripped, as names read from files are
    idle = "59 models have nothing measured left (pool remove-model --idle removes them): Airoboros L2 70B, Alpaca"
    assert "removed source 'llmfao': rows comparisons 8,931, samples 13" in removed.stderr and idle in removed.stderr
    after = json.loads(cli("pool", "stats", "--json", check=True).stdout)
    assert after == {
        **stats,
        "samples": 2854,
        "comparisons": 0,
        "sources": {"chembench": stats["sources"]["chembench"]},
    }
    refused = cli("pool", "remove-model", "GPT 4", "Nobody", "-y")
    assert refused.returncode == 2 and "no model 'Nobody' in the pool; its models: Airoboros L2 70B," in refused.stderr
    done = cli("pool", "remove-model", "GPT 4", "GPT-4", stdin="y\n", check=True)
    assert "removed GPT 4, GPT-4: rows models 2, measurements 2,854" in done.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout)["models"] == 81 - 2
    board = json.loads(cli("rank", "--json", check=True).stdout)
    assert len(board["models"]) == 21 and "GPT-4" not in {row["model"] for row in board["models"]}
    idle = cli("pool", "remove-model", "--idle", "-y", check=True)  # the other 58 of LLMFAO's
    assert "removed Airoboros L2 70B, Alpaca (7B)," in idle.stderr and "(58 in all): rows models 58" in idle.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout)["models"] == 21
    for args, problem in ((["--idle"], "every model has something measured or compared"), ([], "name models")):
        refused = cli("pool", "remove-model", *args, "-y")
        assert refused.returncode == 2 and problem in refused.stderr
