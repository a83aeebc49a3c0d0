"""No import cycles anywhere in the project.

Every module of the project's packages (exchange/, clients/, replay/, bench/) is parsed
with `ast`, and every import it makes — at the top, inside functions, under
`if TYPE_CHECKING:` alike — becomes an edge of a graph of modules. A lazy import inside
a function is still a dependency (it only hides a cycle until the function runs), so it
counts. `from package import name` is an edge to `package.name` when that is a module,
else to the package itself. The test fails on any strongly connected component of more
than one module (or a module importing itself) and prints one cycle through it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("exchange", "clients", "replay", "bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:
                    yield sub, node.lineno
                elif source in modules:
                    yield source, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    modules = project_modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, path in modules.items():
        for target, line in imports_of(name, path, modules):
            graph[name].setdefault(target, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in a deterministic order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(sorted(comp))
    return out


def one_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in prev:
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    hops = [f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
    return " -> ".join([*hops, cycle[-1]])


def cycles(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for comp in strongly_connected(graph):
        if len(comp) > 1 or comp[0] in graph[comp[0]]:
            cycle = describe(graph, one_cycle(graph, comp))
            found.append(cycle if len(comp) <= 2 else f"{cycle}  [component: {', '.join(comp)}]")
    return found


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the scan found the project
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_checker_finds_cycles_direct_lazy_and_relative() -> None:
    graph = {
        "a": {"b": 1},
        "b": {"c": 3},
        "c": {"a": 9},  # a -> b -> c -> a
        "d": {"d": 2},  # a module importing itself
        "e": {"a": 1},  # depends on the cycle, is not part of it
    }
    found = cycles(graph)
    assert found == [
        "a (line 1) -> b (line 3) -> c (line 9) -> a  [component: a, b, c]",
        "d (line 2) -> d",
    ]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_imports_are_resolved_like_python_does(tmp_path: Path) -> None:
    modules = {"pkg": tmp_path / "__init__.py", "pkg.x": tmp_path / "x.py"}
    modules["pkg.sub"] = tmp_path / "sub" / "__init__.py"
    modules["pkg.sub.y"] = tmp_path / "sub" / "y.py"
    src = (
        "from . import x\nfrom .. import x as z\nimport pkg.sub.y.attr\n"
        "def f():\n    from pkg.sub import thing\n"
        "if 0:\n    from .y import q\n"
    )
    y = modules["pkg.sub.y"]
    y.parent.mkdir()
    y.write_text(src)
    got = sorted(imports_of("pkg.sub.y", y, modules))
    assert got == [
        ("pkg.sub", 1),  # `from . import x`: no module pkg.sub.x, so the package
        ("pkg.sub", 5),  # a function-level import counts
        ("pkg.sub.y", 3),  # `import pkg.sub.y.attr`: the longest module prefix
        ("pkg.sub.y", 7),  # `from .y import q` under `if`, relative to pkg.sub
        ("pkg.x", 2),  # `from .. import x`: the module pkg.x
    ]
