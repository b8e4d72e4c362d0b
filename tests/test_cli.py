"""``python -m convnext_report train``: help, errors and a tiny run, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convnext_report.config import field_names


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "convnext_report", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_help_lists_every_key_with_its_default(tmp_path: Path) -> None:
    done = _cli("train", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in field_names():
        assert f"  {name} " in done.stdout, name
    assert "default convnextv2_atto" in done.stdout and "default 0.002" in done.stdout
    assert "default null" in done.stdout and "default true" in done.stdout


def test_unknown_key_is_a_usage_error(tmp_path: Path) -> None:
    done = _cli("train", "learning_rate=0.1", cwd=tmp_path)
    assert done.returncode == 2 and "unknown config key" in done.stderr and "valid keys" in done.stderr


@pytest.mark.slow
def test_tiny_training_run_prints_its_folder(tmp_path: Path, data_root: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"dataset: cifar10\ndata_dir: {data_root}\nmax_classes: 3\ntrain_per_class: 8\nval_per_class: 4\n"
        "batch_size: 12\nepochs: 1\nprogress: false\ndevice: cpu\n"
    )
    done = _cli("train", "--config", str(config), "run_name=cli", "out_dir=runs", "lr=1e-3", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "runs" / "cli"
    assert done.stdout.strip().splitlines()[-1] == f"run folder: {Path('runs') / 'cli'}"
    assert (folder / "eval.json").is_file() and "lr: 0.001" in (folder / "config.yaml").read_text()


def test_bad_value_is_a_usage_error_before_any_work(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "runs"
    small = ("dataset=cifar10", f"data_dir={data_root}", "max_classes=2", "train_per_class=2", "val_per_class=2",
             "batch_size=4", "device=cpu", "progress=false")
    done = _cli("train", *small, "epochs=0", "hflip=maybe", f"out_dir={out}", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("usage: python -m convnext_report train") and "train --help" in done.stderr
    assert "epochs: 0 is out of range; allowed: an integer >= 1" in done.stderr
    assert "hflip: must be true or false, got 'maybe' (str)" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
