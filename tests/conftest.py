"""Shared fixtures: the real data folder beside the checkout and a scratch cache."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("CONVNEXT_REPORT_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real parquet data (../shared/data or $CONVNEXT_REPORT_DATA); missing is an error, not a skip."""
    root = _data_root().resolve()
    if not (root / "tiny-imagenet-32").is_dir():
        pytest.fail(
            f"real data not found at {root}: set CONVNEXT_REPORT_DATA to the folder holding "
            "tiny-imagenet-32/ and cifar10-jpeg/ (see ../shared/data/README.md)"
        )
    return root


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decoded-tensor cache in a session temp folder unless the caller set one."""
    if "CONVNEXT_REPORT_CACHE" not in os.environ:
        os.environ["CONVNEXT_REPORT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_not_ignored() -> None:
    """A test run started in the background (``nohup``, ``&``) ignores Ctrl-C, and the children that
    tests stop with SIGINT would inherit that: give the run Python's usual handler (children then
    start with the default action and raise ``KeyboardInterrupt``)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def book_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local layer (runs, store entries, records) in ``tmp_path/runs``: a test of the report layer never
    writes the repository (it may read its committed layer)."""
    from convnext_report.report import store

    monkeypatch.setenv(store.RUNS_ENV, str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def book_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A book of its own: ``_toc.yml``, ``book/`` (its notebooks and smoke files) and ``benchmarks/`` copied into
    ``tmp_path/repo``, an empty committed layer, the cwd there and the runs folder in ``tmp_path/runs``."""
    from convnext_report.report import store

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "book", repo / "book", ignore=shutil.ignore_patterns("records", "__pycache__"))
    shutil.copytree(REPO / "benchmarks" / "results", repo / "benchmarks" / "results")
    shutil.copy2(REPO / "_toc.yml", repo / "_toc.yml")
    monkeypatch.chdir(repo)
    monkeypatch.setenv(store.RUNS_ENV, str(tmp_path / "runs"))
    return repo


#: what a copy of the repository leaves out: environments, runs, builds, git, caches, carried folders
COPY_IGNORE = shutil.ignore_patterns(".venv", "runs", "_build", ".git", "__pycache__", ".pytest_cache", "test-output",
                                     ".carry", "*.whl")


@pytest.fixture(scope="session")
def copy_repo():
    """A function that copies this repository to a folder, without its result store (the runs a test makes
    are the only entries) and without what :data:`COPY_IGNORE` names; it returns the copy."""
    def copy(dest: Path) -> Path:
        shutil.copytree(REPO, dest, ignore=COPY_IGNORE)
        shutil.rmtree(dest / "results", ignore_errors=True)
        return dest

    return copy


@pytest.fixture(scope="session")
def clean_env():
    """A function giving this process's environment without the book's variables (the decoded-data cache
    stays) and without PYTHONPATH, then ``extra``."""
    def env(**extra: str) -> dict[str, str]:
        kept = {k: v for k, v in os.environ.items()
                if not k.startswith("CONVNEXT_REPORT_") or k == "CONVNEXT_REPORT_CACHE"}
        kept.pop("PYTHONPATH", None)
        return {**kept, **extra}

    return env


@pytest.fixture(scope="session")
def make_tiny(data_root: Path):
    """``make_tiny(out_dir)``: a run of a few seconds: cifar10, 4 classes x 16 training images (2 of each held
    out), 8 test images per class, 2 epochs of 2 steps of 28, on the CPU, named "tiny", its folder in ``out_dir``."""
    from convnext_report.config import TrainConfig

    return lambda out_dir: TrainConfig(
        dataset="cifar10", data_dir=str(data_root), max_classes=4, train_per_class=16, test_per_class=8,
        model="convnextv2_atto", stem_stride=2, image_size=32, batch_size=28, epochs=2, lr=2e-3,
        warmup_epochs=0.5, out_dir=str(out_dir), run_name="tiny", progress=False, device="cpu",
        verbose=False,
    )


@pytest.fixture
def tiny(make_tiny, tmp_path: Path):
    """:func:`make_tiny`'s run with its folder in ``tmp_path / "runs"``."""
    return make_tiny(tmp_path / "runs")


def write_finished_run(folder: Path, config, held_out=(0.30, 0.50), *, final_top1: float | None = None,
                       device: str = "cuda:0", seconds: float = 90.0) -> Path:
    """A finished run folder as training leaves it (config, per-epoch history from epoch 1, record), without
    training: for tests of what reads runs (the store, ``runs``, pages in the full configuration)."""
    import json

    import pandas as pd

    from convnext_report.config import save_config

    folder.mkdir(parents=True, exist_ok=True)
    save_config(config, folder / "config.yaml")
    pd.DataFrame([{"epoch": i + 1, "train_loss": 2.0 - 0.3 * i, "train_acc": v + 0.1, "selection_loss": 2.2 - v,
                   "selection_acc": v, "seconds": seconds / len(held_out), "images_per_second": 900.0}
                  for i, v in enumerate(held_out)]).to_csv(folder / "history.csv", index=False)
    best = max(held_out)
    record = {"status": "finished", "device": device, "device_name": "NVIDIA H200" if device != "cpu" else "CPU",
              "wall_time_seconds": seconds, "end_time": "2026-12-01T10:00:00+00:00", "params_total": 3_700_000,
              "final_top1": best - 0.01 if final_top1 is None else final_top1, "final_top5": min(1.0, best + 0.3),
              "best_epoch": held_out.index(best) + 1, "best_selection_top1": best}
    (folder / "record.json").write_text(json.dumps(record))
    return folder


@pytest.fixture(scope="session")
def finished_run():
    """:func:`write_finished_run` for test modules (``from conftest import`` is ambiguous beside book/conftest.py)."""
    return write_finished_run
