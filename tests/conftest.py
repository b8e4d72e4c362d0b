"""Shared fixtures: the real data folder beside the checkout and a scratch cache."""

from __future__ import annotations

import os
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
