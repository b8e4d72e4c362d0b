"""nbval over the chapters (``pytest --nbval-lax book/``): the smoke configuration, a temporary runs folder.

A chapter with a smoke file runs as ``papermill -f book/params/<chapter>.smoke.yaml`` runs it, whatever
the committed notebook holds (a smoke or a full execution): papermill's
``parameterize_notebook`` adds its injected-parameters cell after the parameters cell, and nbval
executes that notebook. nbval 0.11 reads the notebook file inside ``IPyNbFile.collect``, so
:class:`SmokeChapter` overrides ``collect`` (each cell's options from nbval's own ``find_metadata_tags``),
and a ``pytest_collect_file`` wrapper puts it in place of nbval's collector for that file: node ids,
order (chapter 3 before 4 and 5) and the kernel's working folder stay nbval's, and nothing is written
beside the notebooks. The kernels inherit this process's environment: run folders, records and store
entries go to a temporary runs folder removed at the end; the committed store is read, never written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, find_metadata_tags
from papermill.parameterize import parameterize_notebook

REPO = Path(__file__).resolve().parents[1]
_created: list[Path] = []


def _smoke_file(notebook: Path) -> Path:
    return notebook.parent / "params" / f"{notebook.stem}.smoke.yaml"


class SmokeChapter(IPyNbFile):
    """A chapter as nbval executes it: its code cells after papermill injected the smoke file's values."""

    def collect(self):
        self.nb = parameterize_notebook(nbformat.read(self.path, as_version=4), str(_smoke_file(self.path)))
        for num, cell in enumerate(c for c in self.nb.cells if c.cell_type == "code"):
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.setdefault("check", self.compare_outputs)
            yield IPyNbCell.from_parent(self, name=f"Cell {num}", cell_num=num, cell=cell, options=options)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent):
    collectors = yield
    if not _smoke_file(file_path).is_file():
        return collectors
    return [SmokeChapter.from_parent(parent, path=file_path) if isinstance(c, IPyNbFile) else c for c in collectors]


def pytest_configure(config) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="convnext-book-"))
    _created.append(tmp)
    os.environ.setdefault("CONVNEXT_REPORT_RUNS", str(tmp / "runs"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shared = REPO.parent / "shared" / "data"
    if "CONVNEXT_REPORT_DATA" not in os.environ and shared.is_dir():
        os.environ["CONVNEXT_REPORT_DATA"] = str(shared)


def pytest_unconfigure(config) -> None:
    for folder in _created:
        shutil.rmtree(folder, ignore_errors=True)
