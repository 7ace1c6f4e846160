"""Imports between grover_jax's modules go one way (docs/ARCHITECTURE.md), read with `ast`.

Layers, highest first; a module may import its own layer or any lower one, never a higher one:

    5  cli
    4  programs
    3  train, model, parallel, data, evaluation, interop, analysis, api, masked_lm, runs
    2  store, tokenizer
    1  genome
    0  leaves, importable from anywhere: errors, atomic_files, configuration, bundled, host_memory, progress

and no module-level circle, within a layer or across. Only module-level imports count (also those
under a top-level `if` or `try`); a function-level import is how a command or an optional
dependency loads on first use. Python imports a package's `__init__` before any of its modules, so
importing `a.b.c` counts as importing `a.b` too (except from inside `a.b` itself).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "grover_jax"

LAYERS = {
    "cli": 5,
    "programs": 4,
    **dict.fromkeys(["train", "model", "parallel", "data", "evaluation", "interop", "analysis", "api",
                     "masked_lm", "runs"], 3),
    **dict.fromkeys(["store", "tokenizer"], 2),
    "genome": 1,
    **dict.fromkeys(["errors", "atomic_files", "configuration", "bundled", "host_memory", "progress"], 0),
}

# Edges not yet fixed, each with the reason it is still here: (importer, imported) -> reason.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        if "resources" in path.parts:
            continue
        parts = ("grover_jax", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Names imported by statements that run when the module is imported."""
    imported: set[str] = set()
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            pending += node.body + node.orelse + getattr(node, "finalbody", [])
            pending += [statement for handler in getattr(node, "handlers", []) for statement in handler.body]
    return imported


def import_graph() -> dict[str, set[str]]:
    """{module: the grover_jax modules its import runs}, packages named without `__init__`."""
    modules = _module_names()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _top_level_imports(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            parts = name.split(".")
            for end in range(2, len(parts) + 1):  # a.b.c runs a.b's __init__ first
                target = ".".join(parts[:end])
                inside = module == target or module.startswith(target + ".")
                if target in modules and not inside:
                    targets.add(target)
        graph[module] = targets
    return graph


def layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if m != "grover_jax" and m.split(".")[1] not in LAYERS] == []


def test_no_module_imports_a_higher_layer():
    upward = sorted((a, b) for a, targets in import_graph().items() if a != "grover_jax"
                    for b in targets if layer(b) > layer(a) and (a, b) not in ALLOWED)
    assert upward == []


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    graph = {a: {b for b in targets if (a, b) not in ALLOWED} for a, targets in import_graph().items()}
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_allowed_edge_is_still_there():
    graph = import_graph()
    assert [edge for edge in ALLOWED if edge[1] not in graph.get(edge[0], set())] == []
