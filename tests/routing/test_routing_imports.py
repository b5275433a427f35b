"""The routing package's own modules import each other without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "routing"


def _imports(path: Path) -> set[str]:
    """Sibling modules a module imports anywhere (top level or inside a function)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_circle_inside_routing():
    """Following every relative import (even those deferred inside functions) from any module
    never leads back to it: solver, decompose and reasons no longer need each other."""
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            mod = todo.pop()
            assert mod != start, f"{start} imports itself through {sorted(seen)}"
            if mod not in seen and mod in graph:
                seen.add(mod)
                todo.extend(graph[mod])
