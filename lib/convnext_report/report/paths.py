"""Where the book's files live: the repository root, chapter records, run folders and backbones.

Environment variables override every folder, so tests never write into the repository:

=====================  ==========================  ==================================
what                   variable                    default
=====================  ==========================  ==================================
chapter records        ``CONVNEXT_REPORT_RECORDS``  ``<repo>/book/records``
run folders, backbone  ``CONVNEXT_REPORT_RUNS``     ``<repo>/runs``
=====================  ==========================  ==================================
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RECORDS_ENV", "RUNS_ENV", "SMOKE_ENV", "backbones_dir", "records_dir", "repo_root", "runs_dir",
           "smoke_from_env"]

SMOKE_ENV = "CONVNEXT_REPORT_SMOKE"
RECORDS_ENV = "CONVNEXT_REPORT_RECORDS"
RUNS_ENV = "CONVNEXT_REPORT_RUNS"


def repo_root() -> Path:
    """The book's root (the folder holding ``_toc.yml``): searched from the cwd, then from this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
                return folder
    raise FileNotFoundError(
        "cannot find the book root (a folder with _toc.yml and book/); run from the repository "
        f"or set {RECORDS_ENV} and {RUNS_ENV}"
    )


def _env_dir(variable: str, default: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else repo_root() / default


def records_dir() -> Path:
    """Where chapter records go: ``$CONVNEXT_REPORT_RECORDS`` or ``<repo>/book/records``."""
    return _env_dir(RECORDS_ENV, "book/records")


def runs_dir() -> Path:
    """Parent of all run folders: ``$CONVNEXT_REPORT_RUNS`` or ``<repo>/runs``."""
    return _env_dir(RUNS_ENV, "runs")


def backbones_dir() -> Path:
    """Where chapter 03 exports its pretrained backbones (``<runs>/backbones``)."""
    return runs_dir() / "backbones"


def smoke_from_env() -> bool:
    """True when ``CONVNEXT_REPORT_SMOKE`` is set to 1/true/yes/on."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
