"""A chapter's parameters as papermill sees them: its notebook's defaults (the full configuration), its
smoke file ``book/params/<chapter>.smoke.yaml`` and parameter files; the tools, the plan and nbval pass
a chapter the same values (:func:`passed`)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .store import repo_root

__all__ = ["chapter_params", "check_files", "defaults", "notebook", "passed", "read_files", "smoke_file"]


def notebook(name: str) -> Path:
    """``<repo>/book/<name>.ipynb``."""
    return repo_root() / "book" / f"{name}.ipynb"


def smoke_file(name: str) -> Path:
    """``<repo>/book/params/<name>.smoke.yaml``: ``smoke: true`` and the chapter's reduced values."""
    return repo_root() / "book" / "params" / f"{name}.smoke.yaml"


def defaults(name: str) -> dict[str, Any]:
    """The defaults of chapter ``name``'s parameters cell, read by ``papermill.inspect_notebook``."""
    import papermill  # the book's extra: the command line's ``train`` runs without it

    declared = papermill.inspect_notebook(str(notebook(name)))
    return {key: ast.literal_eval(info["default"]) for key, info in declared.items()}


def read_files(files: Iterable[str | Path]) -> dict[str, Any]:
    """The values of YAML parameter files (as ``papermill -f`` reads them), later files winning."""
    values: dict[str, Any] = {}
    for file in files:
        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"parameter file {file} must hold a mapping of name: value")
        values.update(loaded)
    return values


def passed(name: str, *, smoke: bool = False, files: Sequence[str | Path] = (),
           declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What papermill passes chapter ``name``: its smoke file's values when ``smoke`` (a chapter without
    one has no smoke configuration), then the parameter files' values that the chapter declares."""
    declared = defaults(name) if declared is None else declared
    out = read_files([smoke_file(name)]) if smoke and smoke_file(name).is_file() else {}
    out.update({k: v for k, v in read_files(files).items() if k in declared})
    return out


def chapter_params(name: str, *, smoke: bool = False, files: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Chapter ``name``'s parameters as the notebook will run with them: defaults, then :func:`passed`."""
    declared = defaults(name)
    return {**declared, **passed(name, smoke=smoke, files=files, declared=declared)}


def check_files(files: Sequence[str | Path]) -> None:
    """Refuse the parameter files' names that no notebook of the book declares (papermill would only warn)."""
    declared = set().union(*(defaults(p.stem) for p in sorted((repo_root() / "book").glob("*.ipynb"))))
    unknown = sorted(set(read_files(files)) - declared)
    if unknown:
        raise ValueError(f"{unknown} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of any "
                         f"chapter; parameters: {', '.join(sorted(declared))}")
