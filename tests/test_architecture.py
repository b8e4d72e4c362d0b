"""The package's shape: the core never imports the book's layer, no import circles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "convnext_report"
REPORT = "convnext_report.report"
#: the command line sits above both layers (``plan`` is a report command)
ENTRY_POINTS = {"convnext_report.cli", "convnext_report.__main__"}
MAX_LINES = 450  # a cohesive module may hold up to 450 lines


def _module_name(path: Path) -> str:
    parts = ["convnext_report", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``convnext_report`` module that ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("convnext_report"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("convnext_report"):
                continue
            for alias in node.names:  # "from . import x" imports the module x
                sub = f"{target}.{alias.name}"
                out.add(sub if (PACKAGE / Path(*sub.split(".")[1:])).with_suffix(".py").exists()
                        or (PACKAGE / Path(*sub.split(".")[1:]) / "__init__.py").exists() else target)
    return out - {name}


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_graph_covers_the_package() -> None:
    assert {"convnext_report.training", "convnext_report.report.chapter", "convnext_report.models.factory"} <= set(GRAPH)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(REPORT) and m not in ENTRY_POINTS))
def test_core_never_imports_the_report_layer(module: str) -> None:
    bad = sorted(t for t in GRAPH[module] if t == REPORT or t.startswith(REPORT + "."))
    assert not bad, f"core module {module} imports the book's layer: {bad}"


def test_no_import_circles() -> None:
    """Depth-first search over module -> imported module (a package's __init__ counts as the package)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                # a package importing its own submodules is how packages are built, not a circle
                if not all(b.startswith(a + ".") for a, b in zip(cycle, cycle[1:]) if a != cycle[0]):
                    raise AssertionError("import circle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it (one job per module)"


def test_public_modules_declare_all() -> None:
    missing = [m for m, p in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))
               if not p.name.startswith("_") and "__all__" not in p.read_text()]
    assert not missing, f"public modules without __all__: {missing}"


def test_package_root_exposes_the_entry_points() -> None:
    import convnext_report as cr

    for name in ("build_model", "train", "load_run", "load_split", "TrainConfig", "evaluate"):
        assert name in cr.__all__ and callable(getattr(cr, name))
