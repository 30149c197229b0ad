"""The package's shape, read from its source: no import circle, no upward import.

Imports are read with ``ast`` from every module's source (those inside
functions and under ``TYPE_CHECKING`` too: a deferred import is still a
dependency), so the rules hold whether or not a module was ever imported.
docs/ARCHITECTURE.md draws the same map.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flops_fit"

# The studies; everything else in flops_fit is the generic core (plan, run, record,
# analyse), which knows nothing of any study.
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
    assert "flops_fit.ptycho.fitting" in graph["flops_fit.ptycho.experiment"]  # from flops_fit.ptycho import fitting


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_flops_fit_modules() -> None:
    assert _cycle(_graph()) is None


def _in_a_study(module: str) -> bool:
    return any(module == s or module.startswith(f"{s}.") for s in STUDIES)


def test_the_core_never_imports_a_study() -> None:
    graph = _graph()
    core = [m for m in graph if m != "flops_fit" and not _in_a_study(m)]
    assert "flops_fit.runner" in core and "flops_fit.planning.isoflop" in core
    upward = sorted(f"{m} -> {dep}" for m in core for dep in graph[m] if _in_a_study(dep))
    assert not upward, f"the generic core imports a study: {upward}"


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


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("flops_fit.isoflop", "flops_fit.planning", ["plan_sweep", "validate_budgets", "SIX_N"]),
        ("flops_fit.result", "flops_fit.fit_result", ["Result"]),
        ("flops_fit.result", "flops_fit.laws", ["chinchilla_loss", "optimal_allocation", "nan_resamples",
                                                "estimate_flops_per_sample_per_param"]),
        ("flops_fit.results", "flops_fit.records", ["experiment_id", "load_results", "load_records",
                                                    "BOOKKEEPING_COLUMNS", "LOG_NAME", "TABLE_NAME"]),
        ("flops_fit.pareto", "flops_fit.columns", ["LABELS", "COSTS", "axis_label", "metric_direction",
                                                   "pareto_pairs", "quality_columns"]),
        ("flops_fit.pareto", "flops_fit.front", ["pareto_front"]),
        ("flops_fit.pareto", "flops_fit.pareto_plot", ["plot_pareto", "plot_fronts"]),
        ("flops_fit.explorer", "flops_fit.explorer_parts", ["quality_range", "log_range", "run_details",
                                                            "run_label", "describe_filters"]),
        ("flops_fit.contracts", "flops_fit.user_model", ["model_name", "to_device"]),
        ("flops_fit.runner", "flops_fit.errors", ["DivergedError"]),
        ("flops_fit.runner", "flops_fit.timing", ["time_inference"]),
        ("flops_fit.ptycho.train", "flops_fit.ptycho.fitting", ["fit", "predict", "scaled_lr", "LOSSES",
                                                                "InputScale", "input_scale", "as_channels"]),
    ],
)
def test_old_import_paths_still_work(old: str, new: str, names: list[str]) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"


@pytest.mark.parametrize("module", ["flops_fit.isoflop", "flops_fit.result", "flops_fit.ptycho.train"])
def test_a_module_kept_as_a_re_export_says_for_how_long(module: str) -> None:
    assert "one release" in importlib.import_module(module).__doc__


def test_renamed_functions_keep_their_old_names() -> None:
    from flops_fit import contracts, user_model

    assert contracts.build_model is user_model.build_at_size
    assert contracts.num_params is user_model.model_params
