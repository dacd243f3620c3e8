"""The package's layers, read from the source: no import cycles, and no import from a lower layer to a higher one
(module-level and function-level imports alike)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spinalnet"

#: Bottom to top. A module may import modules of its own rank or below, never above.
RANKS = {
    "spinalnet.errors": 0, "spinalnet.files": 0, "spinalnet.interrupts": 0, "spinalnet.tables": 0,
    "spinalnet.stats": 0, "spinalnet.provenance": 0, "spinalnet.version": 0, "spinalnet.rundir": 0, "spinalnet.plots": 0, "spinalnet.lazy": 0,
    "spinalnet.meta": 0,
    "spinalnet.layers": 1,
    "spinalnet.heads": 2, "spinalnet.data": 2, "spinalnet.keras": 2,
    "spinalnet.models": 3,
    "spinalnet.engine": 4,
    "spinalnet.comparison": 5, "spinalnet.regression": 5, "spinalnet.inference": 5,
    "spinalnet.study": 6,  # above the comparison package: a study is settings of comparisons
    "spinalnet.commands": 7, "spinalnet.__main__": 7,
    "spinalnet": 8,  # the package's lazy public names may point anywhere
}
LOWER = ("spinalnet.layers", "spinalnet.heads", "spinalnet.data", "spinalnet.models", "spinalnet.engine")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def rank(module: str) -> int:
    for prefix in sorted(RANKS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return RANKS[prefix]
    raise AssertionError(f"{module} belongs to no layer of RANKS: add it")


def imports(module: str) -> set[str]:
    """The package modules ``module`` imports anywhere in its source (functions included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("spinalnet"):
                found.add(name)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        rank(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} (layer {rank(m)}) imports {t} (layer {rank(t)})"
              for m, targets in GRAPH.items() for t in sorted(targets) if rank(t) > rank(m)]
    assert not upward, "\n".join(upward)


def test_lower_layers_never_import_commands_or_comparison():
    bad = [f"{m} imports {t}" for m, targets in GRAPH.items() if m.startswith(LOWER)
           for t in targets if t.startswith(("spinalnet.commands", "spinalnet.comparison", "spinalnet.regression",
                                             "spinalnet.inference"))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Tarjan's strongly connected components over module- and function-level imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(" -> ".join(sorted(component)))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, "\n".join(cycles)


def test_the_graph_sees_function_level_imports():
    """The checks above would be empty if the reader missed imports inside functions."""
    assert "spinalnet.engine.train" in GRAPH["spinalnet.commands.train"]  # imported inside run()


@pytest.mark.parametrize("module", ["spinalnet.stats", "spinalnet.comparison.report", "spinalnet.comparison.summary",
                                    "spinalnet.layers.arguments", "spinalnet.layers.split", "spinalnet.files",
                                    "spinalnet.rundir"])
def test_torch_free_modules_import_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stderr[-2000:]
