"""Where the book's files live: records, run folders, backbones and the result store.

A chapter reads from two layers, local first, and writes to one of them. The committed layer is
in the repository (``results/``, ``book/records/``) and is written only when publishing is asked
for (``CONVNEXT_REPORT_PUBLISH=1``: ``tools/execute_chapters`` and ``tools/device_run`` set it);
otherwise new store entries and records go to the untracked local layer under ``runs/``, so a
plain ``papermill book/04_baseline.ipynb out.ipynb`` never changes a tracked file.

==========================  ==============================  ======================================
what                        variable                        default
==========================  ==============================  ======================================
run folders (weights)       ``CONVNEXT_REPORT_RUNS``        ``<repo>/runs``
chapter 3's backbones       (under the run folders)         ``<runs>/backbones``
local store entries         (under the run folders)         ``<runs>/results``
committed store entries     ``CONVNEXT_REPORT_STORE``       ``<repo>/results``
local chapter records       ``CONVNEXT_REPORT_RECORDS``     ``<runs>/records``
committed chapter records   (publishing writes here)        ``<repo>/book/records``
==========================  ==============================  ======================================

The smoke configuration keeps its own store folder, ``<store>/smoke/<chapter>/``, beside the
full configuration's ``<store>/<chapter>/``. ``CONVNEXT_REPORT_RECORDS`` names the folder records
are written to even when publishing (``tools/execute_chapters`` collects them there first).
"""

from __future__ import annotations

import os
from pathlib import Path

from .switches import PUBLISH_ENV, SMOKE_ENV, publishing, smoke_from_env

__all__ = [
    "PUBLISH_ENV", "RECORDS_ENV", "RUNS_ENV", "SMOKE_ENV", "STORE_ENV", "backbones_dir", "committed_records_dir",
    "committed_store_dir", "display_path", "local_store_dir", "record_layers", "records_dir", "repo_root", "runs_dir",
    "smoke_from_env", "store_layers", "store_write_dir",
]

RECORDS_ENV = "CONVNEXT_REPORT_RECORDS"
RUNS_ENV = "CONVNEXT_REPORT_RUNS"
STORE_ENV = "CONVNEXT_REPORT_STORE"


def repo_root() -> Path:
    """The book's root (the folder holding ``_toc.yml``): searched from the cwd, then from this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
                return folder
    raise FileNotFoundError(
        "cannot find the book root (a folder with _toc.yml and book/); run from the repository "
        f"or set {RECORDS_ENV}, {RUNS_ENV} and {STORE_ENV}"
    )


def _env_dir(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def runs_dir() -> Path:
    """Parent of all run folders: ``$CONVNEXT_REPORT_RUNS`` or ``<repo>/runs`` (never committed)."""
    return _env_dir(RUNS_ENV) or repo_root() / "runs"


def backbones_dir() -> Path:
    """Where chapter 03 exports its pretrained backbones (``<runs>/backbones``)."""
    return runs_dir() / "backbones"


def committed_records_dir() -> Path:
    """The records the book shows: ``<repo>/book/records`` (written only when publishing)."""
    return repo_root() / "book" / "records"


def records_dir() -> Path:
    """Where a chapter writes its record: ``$CONVNEXT_REPORT_RECORDS``, else the committed folder when
    publishing, else ``<runs>/records``."""
    if (folder := _env_dir(RECORDS_ENV)) is not None:
        return folder
    return committed_records_dir() if publishing() else runs_dir() / "records"


def record_layers() -> list[Path]:
    """Folders records are read from, first wins: the write folder, then the committed one."""
    return _unique([records_dir(), committed_records_dir()])


def committed_store_dir() -> Path:
    """The committed result store: ``$CONVNEXT_REPORT_STORE`` or ``<repo>/results``."""
    return _env_dir(STORE_ENV) or repo_root() / "results"


def local_store_dir() -> Path:
    """Store entries of runs not (yet) published: ``<runs>/results`` (never committed)."""
    return runs_dir() / "results"


def store_write_dir() -> Path:
    """Where new store entries go: the committed store when publishing, else the local one."""
    return committed_store_dir() if publishing() else local_store_dir()


def store_layers() -> list[Path]:
    """Store roots searched for a run, first wins: local, then committed."""
    return _unique([local_store_dir(), committed_store_dir()])


def display_path(path: str | Path) -> str:
    """``path`` as a page may show it: relative to the repository or ``<runs>/...``, never this machine's
    absolute folders (a page is rendered on one machine and read everywhere)."""
    path = Path(path)
    for base, name in ((runs_dir(), "<runs>"), (_repo_or_none(), None)):
        if base is not None and path.is_absolute() and path.resolve().is_relative_to(base.resolve()):
            rel = path.resolve().relative_to(base.resolve())
            return str(rel) if name is None else f"{name}/{rel}"
    return path.name if path.is_absolute() else str(path)


def _repo_or_none() -> Path | None:
    try:
        return repo_root()
    except FileNotFoundError:
        return None


def _unique(folders: list[Path]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        if not any(_same(folder, seen) for seen in out):
            out.append(folder)
    return out


def _same(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()
