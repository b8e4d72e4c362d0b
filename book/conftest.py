"""nbval over the chapters (``pytest --nbval-lax book/``): smoke configuration, temporary folders.

The kernels nbval starts inherit this process's environment, so setting the variables here
selects the smoke configuration (nbval cannot pass papermill parameters) and sends every run
folder, exported backbone, store entry and chapter record into a temporary folder that is removed
at the end: the repository is never written to (and its committed result store is not read, so
the chapters train). Variables already set by the caller win.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_created: list[Path] = []


def pytest_configure(config) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="convnext-book-"))
    _created.append(tmp)
    os.environ.setdefault("CONVNEXT_REPORT_SMOKE", "1")
    os.environ.setdefault("CONVNEXT_REPORT_RUNS", str(tmp / "runs"))
    os.environ.setdefault("CONVNEXT_REPORT_RECORDS", str(tmp / "records"))
    os.environ.setdefault("CONVNEXT_REPORT_STORE", str(tmp / "results"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shared = REPO.parent / "shared" / "data"
    if "CONVNEXT_REPORT_DATA" not in os.environ and shared.is_dir():
        os.environ["CONVNEXT_REPORT_DATA"] = str(shared)


def pytest_unconfigure(config) -> None:
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)
