"""The package layers of DESIGN.md: `aggregators/` and `reports/` import nothing from `harness/`, `reports/` of
the others only `aggregators/`, and `tasks/` only `harness.schema` (the records it produces)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "tasks", "aggregators", "reports")
ALLOWED = {
    "aggregators": {"aggregators"},
    "reports": {"reports", "aggregators"},
    "tasks": {"tasks", "harness.schema"},
}


def imported_modules(path: Path) -> set[str]:
    """The project modules a file imports (at any depth: lazy imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


def permitted(module: str, allowed: set[str]) -> bool:
    """True for an allowed module, a module inside one, or a package above one (`from harness import schema`
    imports `harness`, then `harness.schema`)."""
    return any(module == a or module.startswith(f"{a}.") or a.startswith(f"{module}.") for a in allowed)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    imports = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for module in imported_modules(path)
        if not permitted(module, ALLOWED[package])
    }
    assert not imports
