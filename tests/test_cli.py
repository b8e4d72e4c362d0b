"""``python -m convnext_report train``: help and errors (``cli.main`` in this process), and a tiny run in a
subprocess, as a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convnext_report.cli import main
from convnext_report.config import field_names


def _main(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``cli.main(args)`` in this process (argparse exits with 2)."""
    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return int(status or 0), out.out, out.err


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "convnext_report", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_help_lists_every_key_with_its_default(capsys) -> None:
    status, out, err = _main("train", "--help", capsys=capsys)
    assert status == 0, err
    for name in field_names():
        assert f"  {name} " in out, name
    assert "default convnextv2_atto" in out and "default 0.002" in out
    assert "default null" in out and "default true" in out
    assert "[an integer >= 1]" in out  # what each key accepts


def test_unknown_key_is_a_usage_error(capsys) -> None:
    status, _, err = _main("train", "learning_rate=0.1", capsys=capsys)
    assert status == 2 and "unknown config key" in err and "valid keys" in err


@pytest.mark.slow
def test_tiny_training_run_prints_its_folder(tmp_path: Path, data_root: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"dataset: cifar10\ndata_dir: {data_root}\nmax_classes: 3\ntrain_per_class: 8\ntest_per_class: 4\n"
        "batch_size: 12\nepochs: 1\nprogress: false\ndevice: cpu\n"
    )
    done = _cli("train", "--config", str(config), "run_name=cli", "out_dir=runs", "lr=1e-3", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "runs" / "cli"
    assert done.stdout.strip().splitlines()[-1] == f"run folder: {Path('runs') / 'cli'}"
    assert (folder / "eval.json").is_file() and "lr: 0.001" in (folder / "config.yaml").read_text()


def test_bad_value_is_a_usage_error_before_any_work(tmp_path: Path, data_root: Path, capsys) -> None:
    out = tmp_path / "runs"
    small = ("dataset=cifar10", f"data_dir={data_root}", "max_classes=2", "train_per_class=2", "test_per_class=2",
             "batch_size=4", "device=cpu", "progress=false")
    status, stdout, err = _main("train", *small, "epochs=0", "hflip=maybe", f"out_dir={out}", capsys=capsys)
    assert status == 2, stdout + err
    assert err.startswith("usage: python -m convnext_report train") and "train --help" in err
    assert "epochs: 0 is out of range; allowed: an integer >= 1" in err
    assert "hflip: must be true or false, got 'maybe' (str)" in err
    assert "Traceback" not in err and not out.exists()


def test_the_command_line_needs_no_papermill() -> None:
    """papermill is the book's extra: ``train`` (and every packed run's process) imports without it."""
    code = "import sys, convnext_report.cli; assert 'papermill' not in sys.modules, 'cli imports papermill'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lib")})
    assert done.returncode == 0, done.stderr
