"""The arrows of DESIGN.md and docs/architecture.md, read from the code with `ast`.

Top level: web and scheduler → fulfilment → routing; routing knows none of them. Inside
`fulfilment/`, each area (a sub-package) imports only the areas below it (`AREAS`), and no two
modules import each other, even through an import hidden inside a function. Inside `web/`, a
desk (a blueprint package, or the CLI) never imports another desk; only the app factory wires them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "routing": {"fulfilment", "web", "scheduler", "flask", "sqlalchemy", "alembic"},
    "fulfilment": {"web", "scheduler", "flask"},
    "scheduler": {"web"},
}

# The areas of fulfilment/ and the areas each may import: one way, from the top down. The same
# table is in docs/architecture.md (a test below keeps the two equal).
AREAS: dict[str, set[str]] = {
    "core": set(),
    "catalogue": {"core"},
    "accounts": {"core", "catalogue"},
    "waves": {"core", "catalogue"},
    "orders": {"core", "catalogue", "waves"},
    "night": {"core", "catalogue", "waves"},
    "handovers": {"core", "catalogue", "accounts", "waves", "night"},
    "points": {"core", "catalogue", "waves", "orders", "night"},
    "platforms": {"core", "catalogue", "waves", "orders", "night"},
    "demo": {"core", "catalogue", "waves", "orders", "night", "accounts"},
    "printing": {"core", "catalogue", "waves", "night"},
}
# The desks of web/: each may import the app's top-level modules (security, limits, i18n, error
# pages), never another desk. The CLI also imports the app factory to build the app it runs in.
DESKS = ("auth", "portal", "api", "warehouse", "dispatch", "cli")
FACTORY = "web/__init__.py"
OURS = ("fulfilment", "web", "scheduler", "routing")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """Every module of ours that `path` imports, anywhere in it (functions included), with the
    line: relative imports resolved, `from a import b` read as both `a` and `a.b`."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in OURS:
                continue
            yield module, node.lineno
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno


def python_files(root: Path, package: str) -> list[Path]:
    return [p for p in sorted((root / package).rglob("*.py")) if "migrations" not in p.parts[:-1]]


def area_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "fulfilment" and len(parts) > 1 else None


def wrong_way_imports(root: Path, areas: dict[str, set[str]]) -> list[str]:
    """Every import from one area of fulfilment/ into another that `areas` does not allow."""
    found = []
    for path in python_files(root, "fulfilment"):
        here = area_of(module_name(path, root))
        if here is None:  # the package's own __init__: imports each area's models, sits on all
            continue
        for module, line in imports_of(path, root):
            there = area_of(module)
            if there is None or there == here or there not in areas:
                continue
            if there not in areas.get(here, set()):
                found.append(f"{path.relative_to(root)}:{line}: {here} → {there}")
    return sorted(set(found))


def module_cycles(root: Path, package: str) -> list[list[str]]:
    """Circles of imports between the modules of a package (depth-first, each circle once)."""
    files = {module_name(p, root): p for p in python_files(root, package)}
    graph = {
        name: sorted({m for m, _ in imports_of(path, root) if m in files and m != name})
        for name, path in files.items()
    }
    # a package's __init__ importing its own modules is how packages work, not a circle
    for name in graph:
        graph[name] = [m for m in graph[name] if not m.startswith(name + ".")]
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_it_may(package):
    """No module of the package imports a package its layer may not see."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_every_area_of_fulfilment_is_declared():
    """A new sub-package of fulfilment/ must say where it sits before it can import anything."""
    packages = {p.parent.name for p in (ROOT / "fulfilment").glob("*/__init__.py")}
    assert packages == set(AREAS)
    assert [p.name for p in (ROOT / "fulfilment").glob("*.py")] == ["__init__.py"]


def test_the_declared_arrows_go_one_way():
    """The allowed arrows themselves make no circle, and each area only names declared areas."""
    order: list[str] = []
    left = dict(AREAS)
    while left:
        ready = sorted(a for a, below in left.items() if below <= set(order))
        assert ready, f"the arrows between {sorted(left)} make a circle"
        order += ready
        for area in ready:
            del left[area]


def test_areas_import_only_the_areas_below_them():
    """An import from one area into another that AREAS does not allow is a wrong-way arrow."""
    assert wrong_way_imports(ROOT, AREAS) == []


@pytest.mark.parametrize("package", ["fulfilment", "web", "routing", "scheduler"])
def test_no_module_imports_another_that_imports_it(package):
    """No circle of imports between modules, not even one hidden inside a function."""
    assert module_cycles(ROOT, package) == []


def test_web_desks_do_not_import_each_other():
    """A desk imports the app's shared modules, never another desk; the factory wires them."""
    found = []
    for path in python_files(ROOT, "web"):
        name = module_name(path, ROOT).split(".")
        here = name[1] if len(name) > 1 and name[1] in DESKS else None
        for module, line in imports_of(path, ROOT):
            parts = module.split(".")
            there = parts[1] if parts[0] == "web" and len(parts) > 1 else None
            if there not in DESKS or there == here:
                continue
            if str(path.relative_to(ROOT)) != FACTORY:
                found.append(f"{path.relative_to(ROOT)}:{line}: {here or 'web'} → {there}")
    assert found == []


def test_the_architecture_page_draws_the_same_arrows():
    """docs/architecture.md's table of areas is the AREAS of this test, so the two cannot drift."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|[^|\n]*\| ([^|\n]*) \|$", text, flags=re.M)
    drawn = {area: set(re.findall(r"`(\w+)`", below)) for area, below in rows}
    assert drawn == AREAS


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_planted_wrong_way_import_is_caught(tmp_path):
    """The check itself can fail: waves importing the night (inside a function) is reported
    with its file and line, and so is a circle between two modules of one area."""
    root = _plant(
        tmp_path,
        {
            "fulfilment/__init__.py": "",
            "fulfilment/core/__init__.py": "",
            "fulfilment/waves/__init__.py": "",
            "fulfilment/night/__init__.py": "",
            "fulfilment/waves/cutoff.py": (
                "from fulfilment.core import db\n\ndef f():\n    from ..night.plans import x\n"
            ),
            "fulfilment/night/plans.py": "from fulfilment.waves.cutoff import f\nx = 1\n",
            "fulfilment/points/__init__.py": "",
            "fulfilment/points/a.py": "from . import b\n",
            "fulfilment/points/b.py": "def g():\n    from .a import h\n",
        },
    )
    assert wrong_way_imports(root, AREAS) == ["fulfilment/waves/cutoff.py:4: waves → night"]
    assert ["fulfilment.points.a", "fulfilment.points.b", "fulfilment.points.a"] in module_cycles(
        root, "fulfilment"
    )
