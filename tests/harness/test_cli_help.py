"""Every command's --help shows its help text and each option's whole (rich reads "[...]" as markup and drops it)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app

COMMAND = typer.main.get_command(app)


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of every leaf command under `group` (typer's own click classes: duck-typed)."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


LEAVES = dict(commands(COMMAND))


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_help_shows_every_option_whole(path: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.replace("│", " ").split())
    helps = [LEAVES[path].help or ""] + [p.help for p in LEAVES[path].params if p.param_type_name == "option"]
    for help_text in filter(None, helps):
        assert " ".join(help_text.replace("\\[", "[").split()) in text, (help_text, text)
