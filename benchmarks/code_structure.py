"""The package's structure in numbers: import cycles, function-level imports, the largest functions, and
the path one ``spinalnet compare`` takes (files and functions it calls, how often it validates its config
and builds a model).

    python benchmarks/code_structure.py            # static figures, then a 2-seed compare on generated data

The static part reads the source only (``ast``); the compare part runs the command in this process under
``sys.setprofile`` and counts the package's own calls.
"""

from __future__ import annotations

import argparse
import ast
import collections
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spinalnet"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> tuple[list[tuple[str, bool]], int]:
    """(imported spinalnet module, inside a function) for every name imported from the package in ``path``,
    and the number of import statements inside functions."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []
    statements = [0]
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name.startswith("spinalnet")]
                found.extend((n, in_function) for n in names)
                statements[0] += bool(names) and in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                if base.startswith("spinalnet"):
                    statements[0] += in_function
                    for alias in child.names:
                        candidate = f"{base}.{alias.name}"
                        found.append((candidate, in_function))
            visit(child, inside)

    visit(tree, False)
    return found, statements[0]


def graph() -> tuple[dict[str, set[str]], int, int]:
    """Module -> the package modules it imports (at module or function level); the number of import statements
    inside functions, and of modules."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = collections.defaultdict(set)
    in_functions = 0
    for name, path in modules.items():
        found, statements = imports_of(path)
        for target, _ in found:
            # ``from spinalnet.x import y``: y may be a module or a name in x
            resolved = target if target in modules else target.rpartition(".")[0]
            if resolved in modules and resolved != name:
                edges[name].add(resolved)
        in_functions += statements
    return edges, in_functions, len(modules)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            strong(v)
    return found


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every package module ``start`` imports, directly or through others (module- and function-level imports)."""
    seen, todo = {start}, [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen - {start}


def largest_functions(limit: int = 10) -> list[tuple[int, str]]:
    sizes = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes.append((node.end_lineno - node.lineno + 1, f"{module_name(path)}.{node.name}"))
    return sorted(sizes, reverse=True)[:limit]


def trace_compare(seeds: int) -> None:
    """Run a small compare under sys.setprofile; count the package's files, functions and key calls."""
    import numpy as np

    try:
        from spinalnet.commands.commands_all.cli import main
    except ImportError:  # the layout before the comparison package
        from spinalnet.commands.cli import main

    calls: collections.Counter = collections.Counter()
    root = str(PACKAGE)

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            code = frame.f_code
            calls[(code.co_filename, code.co_qualname, code.co_firstlineno)] += 1

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 255, (200, 28, 28), dtype=np.uint8)
        y = np.arange(200) % 4
        np.savez(f"{tmp}/d.npz", x=x, y=y)
        args = ["compare", "--dataset", f"npz:{tmp}/d.npz", "--seeds", str(seeds), "--epochs", "1",
                "--batch-size", "64", "--no-progress", "--output", f"{tmp}/out"]
        sys.setprofile(profile)
        try:
            code = main(args)
        finally:
            sys.setprofile(None)
    files = {f for f, _, _ in calls}
    functions = set(calls)
    print(f"one `spinalnet compare` ({seeds} seeds, exit {code}): {len(files)} files and {len(functions)} "
          f"distinct functions of the package called")

    def count(name: str) -> int:
        return sum(n for (f, q, _), n in calls.items() if q.split(".")[-1] == name)

    for name in ("validate", "from_dict", "to_dict", "create_model", "build_model"):
        print(f"  calls of {name}(): {count(name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--static-only", action="store_true")
    args = parser.parse_args()
    edges, in_functions, modules = graph()
    print(f"modules: {modules}; top-level modules: {len(list(PACKAGE.glob('*.py')))}")
    print(f"import statements of package modules inside functions: {in_functions}")
    found = cycles(edges)
    print(f"import cycles (module and function level): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    for start in ("spinalnet.comparison.compare", "spinalnet.study.execute"):
        if start in edges:
            print(f"modules on {start}'s path (imported by it, directly or not): {len(reachable(edges, start))} "
                  f"of {modules}")
    print("largest functions (lines):")
    for lines, name in largest_functions():
        print(f"  {lines:4d}  {name}")
    if not args.static_only:
        trace_compare(args.seeds)


if __name__ == "__main__":
    main()
