"""The apps keep a shape a newcomer can read: imports only go one way (no module of an app
imports, directly or through others, a module that imports it back) and no module grows past
what one sitting reads.

The import graph is built from the source with ``ast``, so an import inside a function or
under ``TYPE_CHECKING`` counts like one at the top: a cycle hidden in a function is still a
cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The apps, the project package and the benchmarks: every package of ours a newcomer reads.
PACKAGES = ("genres", "sandbox", "deployments", "swedify", "benchmarks")
MAX_LINES = 800
# The one adapter allowed to be long: every Spotify endpoint and its retry policy in one place.
LONG_MODULES_ALLOWED = {"genres.spotify"}


def modules_of(package: str, root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (subpackages included)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules among ``known`` that the module ``name`` imports, wherever in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names}
            named = submodules & known
            found.update(named)
            if len(named) < len(submodules):
                # Some names are attributes of ``target`` itself.
                found.add(target)
    edges = set()
    for target in found:
        # ``import a.b.c`` runs a.b.c; the nearest known module is what it depends on.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def import_graph(packages: tuple[str, ...], root: Path = ROOT) -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in packages:
        modules.update(modules_of(package, root))
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle (a -> b -> ... -> a) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_through(group, graph) for group in groups]


def _cycle_through(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest path from the group's first module back to itself within the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph[node] & group):
                if other == start:
                    return [*paths[node], start]
                if other not in paths:
                    paths[other] = [*paths[node], other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"no cycle through {sorted(group)}")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_of_an_app_imports_one_that_imports_it_back(package):
    cycles = cycles_in(import_graph((package,)))

    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_apps_do_not_import_each_other_in_a_circle():
    cycles = cycles_in(import_graph(PACKAGES))

    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_longer_than_one_sitting_reads(package):
    too_long = {
        name: len(path.read_text().splitlines())
        for name, path in modules_of(package).items()
        if name not in LONG_MODULES_ALLOWED
    }
    too_long = {name: lines for name, lines in too_long.items() if lines > MAX_LINES}

    assert too_long == {}, f"modules over {MAX_LINES} lines: {too_long}"


# --- The checker itself, on modules written for it ------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_a_cycle_through_a_function_local_import_is_found_and_named(tmp_path):
    write_package(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "from app import b\n",
            "app/b.py": "def later():\n    from app.c import thing\n",
            "app/c.py": "import app.a\nthing = 1\n",
            "app/d.py": "from app.a import x\n",  # imports into the cycle, is not part of it
        },
    )

    cycles = cycles_in(import_graph(("app",), root=tmp_path))

    assert cycles == [["app.a", "app.b", "app.c", "app.a"]]


def test_relative_and_type_checking_imports_count_and_a_layered_package_has_no_cycle(tmp_path):
    layered = {
        "app/__init__.py": "",
        "app/models.py": "",
        "app/services.py": "from .models import Row\n",
        "app/views.py": "from typing import TYPE_CHECKING\nfrom app import services\n"
        "if TYPE_CHECKING:\n    from app.models import Row\n",
    }
    write_package(tmp_path, layered)
    assert cycles_in(import_graph(("app",), root=tmp_path)) == []

    write_package(
        tmp_path,
        {
            "app/models.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .views import Page\n"
        },
    )
    assert cycles_in(import_graph(("app",), root=tmp_path)) == [
        ["app.models", "app.views", "app.models"]
    ]
