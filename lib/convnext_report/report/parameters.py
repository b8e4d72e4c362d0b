"""A chapter's parameters: read from the notebook namespace or file, and the smoke reductions.

Values the user passes (``papermill -p epochs 2``) always win: papermill injects them as a cell
tagged ``injected-parameters`` whose source starts with ``# Parameters``; the kernel's input
history ``In`` holds that source, which :func:`passed_parameters` parses with ``ast``. The smoke
reductions apply only to the keys nobody passed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["INJECTED_HEADER", "apply_smoke", "notebook_defaults", "parameters", "passed_parameters"]

#: the first line of papermill's injected-parameters cell
INJECTED_HEADER = "# Parameters"
#: types a parameters-cell value may have (everything else in the namespace is ignored)
_PARAM_TYPES = (bool, int, float, str, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters-cell values in a notebook namespace: public names bound to plain data."""
    return {
        k: v for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PARAM_TYPES)
    }


def _assigned(source: str) -> list[str]:
    """Names assigned at the top level of ``source`` (plain or annotated assignments)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    names = []
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def passed_parameters(namespace: Mapping[str, Any]) -> set[str]:
    """Names set by papermill's injected-parameters cell, read from the kernel's input history ``In``."""
    history = namespace.get("In")
    if not isinstance(history, (list, tuple)):
        return set()
    passed: set[str] = set()
    for source in history:
        if isinstance(source, str) and source.lstrip().startswith(INJECTED_HEADER):
            passed.update(_assigned(source))
    return passed


def apply_smoke(params: dict[str, Any], smoke: Mapping[str, Any], passed: set[str]) -> dict[str, tuple[Any, Any]]:
    """Replace the values of ``smoke``'s keys that were not passed; returns ``key -> (full, smoke)`` changed."""
    reductions = {k: (params[k], v) for k, v in smoke.items() if k not in passed and params[k] != v}
    params.update({k: v for k, v in smoke.items() if k not in passed})
    return reductions


def notebook_defaults(path: str | Path) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters`` cell (the book's full configuration), without a kernel.

    Every line of that cell is ``name: type = literal  # comment``; values are read with ``ast.literal_eval``.
    """
    cells = json.loads(Path(path).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path}: expected one cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = ast.literal_eval(node.value)
    return out
