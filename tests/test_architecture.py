"""The package's shape, read from its source: no import circle, no upward import.

Imports are read with ``ast`` from every module's source (those inside
functions and under ``TYPE_CHECKING`` too: a deferred import is still a
dependency), so the rules hold whether or not a module was ever imported.
docs/ARCHITECTURE.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flops_fit"

# The generic core: plan, run, record, analyse. It knows nothing of any study.
CORE = ("api", "checks", "columns", "contracts", "device", "errors", "executors", "explorer", "explorer_parts", "fingerprint", "fit_result", "flops",
        "front", "isoflop", "laws", "locking", "metrics", "notebook", "pareto", "pareto_plot", "planning", "records", "result", "results", "runner",
        "parametric_fit", "isoflop_fit", "fit_inputs", "scaling", "sweep_io", "timing", "training", "user_model")
STUDIES = ("flops_fit.ptycho", "flops_fit.examples")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The flops_fit modules ``name`` imports (``from a import b`` names ``a.b`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read_from_the_source() -> None:
    graph = _graph()
    assert "flops_fit.planning.isoflop" in graph
    assert "flops_fit.planning.plan" in graph["flops_fit.planning.isoflop"]
    assert "flops_fit.ptycho.train" in graph["flops_fit.ptycho.experiment"]  # from flops_fit.ptycho import train


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_flops_fit_modules() -> None:
    assert _cycle(_graph()) is None


@pytest.mark.parametrize("core", CORE)
def test_the_core_never_imports_a_study(core: str) -> None:
    graph = _graph()
    mine = [m for m in graph if m == f"flops_fit.{core}" or m.startswith(f"flops_fit.{core}.")]
    assert mine, f"flops_fit.{core} is not a module any more: update CORE"
    upward = sorted(f"{m} -> {dep}" for m in mine for dep in graph[m]
                    if any(dep == s or dep.startswith(f"{s}.") for s in STUDIES))
    assert not upward, f"the generic core imports a study: {upward}"


def test_every_module_is_in_a_layer() -> None:
    top = {m.split(".")[1] for m in _graph() if m.count(".") >= 1}
    studies = {s.split(".")[1] for s in STUDIES}
    assert top <= set(CORE) | studies, sorted(top - set(CORE) - studies)


def test_no_package_name_hides_one_of_its_modules() -> None:
    # `from flops_fit.planning.grid import grid` in planning/__init__ would make
    # flops_fit.planning.grid the function, not the module: imports then depend on order.
    modules = _modules()
    for name, path in modules.items():
        if path.name != "__init__.py":
            continue
        bound = {alias.asname or alias.name for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) for alias in node.names}
        hidden = sorted(b for b in bound if f"{name}.{b}" in modules)
        assert not hidden, f"{name} binds names that hide its modules: {hidden}"
