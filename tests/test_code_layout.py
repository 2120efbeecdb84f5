"""The import graph has no cycles held apart by imports hidden inside functions.

import-linter (in `make lint`) checks which way imports run, but it counts an import inside a
function like any other, so a cycle could still be dodged by moving one in there. This walk
refuses every such import of project code, except in an AppConfig's `ready()` (where Django
wants registrations made) and one marked as deferred for start-up cost.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "core", "orchestrator", "runs", "approvals", "gallery")
START_UP_COST = "start-up cost"


def _imports_in_functions(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if function is not None and isinstance(child, ast.Import | ast.ImportFrom):
                names = (
                    [alias.name for alias in child.names]
                    if isinstance(child, ast.Import)
                    else [child.module or ""]
                )
                ours = any(name.split(".")[0] in PACKAGES for name in names) or (
                    isinstance(child, ast.ImportFrom) and child.level > 0
                )
                nearby = " ".join(lines[max(child.lineno - 3, 0) : child.lineno])
                registration = path.name == "apps.py" and function == "ready"
                if ours and not registration and START_UP_COST not in nearby:
                    found.append(f"{path.relative_to(ROOT)}:{child.lineno} in {function}()")
            visit(child, function)

    visit(ast.parse(source), None)
    return found


def test_no_project_import_is_hidden_inside_a_function():
    hidden = [
        place
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
        for place in _imports_in_functions(path)
    ]
    assert hidden == []
