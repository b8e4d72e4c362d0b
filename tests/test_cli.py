"""``python -m convnext_report train``: help and errors (``cli.main`` in this process), and a tiny run in a
subprocess, as a user starts it."""

from __future__ import annotations

import os
import re
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


def test_help_is_plain_text(capsys) -> None:
    for args in (("--help",), ("train", "--help"), ("plan", "--help"), ("publish", "--help"), ("runs", "--help"),
                 ("runs", "compare", "--help")):
        status, out, _ = _main(*args, capsys=capsys)
        assert status == 0 and out
        assert "``" not in out and not re.search(r":\w+:`", out), (args, out)


def _given(monkeypatch: pytest.MonkeyPatch) -> list:
    """The configs ``main`` would train (training replaced by recording them)."""
    from convnext_report import cli

    seen: list = []
    monkeypatch.setattr(cli, "run", lambda config: seen.append(config) or 0)
    return seen


def test_options_and_key_values_in_any_order(tmp_path: Path, monkeypatch, capsys) -> None:
    seen = _given(monkeypatch)
    (tmp_path / "f.yaml").write_text("dataset: cifar10\nbatch_size: 12\n")
    status, _, err = _main("train", "lr=0.1", "--config", str(tmp_path / "f.yaml"), "epochs=2", capsys=capsys)
    assert status == 0, err
    assert (seen[0].lr, seen[0].epochs, seen[0].dataset, seen[0].batch_size) == (0.1, 2, "cifar10", 12)


def test_resume_reads_the_run_folders_settings(tmp_path: Path, monkeypatch, capsys) -> None:
    from convnext_report.config import TrainConfig, save_config

    seen = _given(monkeypatch)
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    save_config(TrainConfig(dataset="cifar10", lr=0.1, out_dir=str(tmp_path / "runs"), run_name="mine"),
                tmp_path / "runs" / "mine" / "config.yaml")
    common = ("run_name=mine", f"out_dir={tmp_path / 'runs'}", "resume=true")
    assert _main("train", *common, capsys=capsys)[0] == 0
    assert (seen[-1].dataset, seen[-1].lr, seen[-1].resume) == ("cifar10", 0.1, True)  # not the defaults
    assert _main("train", *common, "lr=0.5", capsys=capsys)[0] == 0
    assert seen[-1].lr == 0.5  # given: training compares it with the saved value (and refuses)


def test_no_data_setting_and_no_hub_fails_at_once_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    import huggingface_hub

    def unreachable(repo_id, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    for name in ("CONVNEXT_REPORT_DATA", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read when it was imported
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    monkeypatch.setitem(sys.modules, "datasets", None)  # the hub's shards are read without it too
    args = ("train", "dataset=cifar10", f"out_dir={tmp_path / 'runs'}", "device=cpu", "progress=false")
    status, out, err = _main(*args, capsys=capsys)
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: cifar10: no local data folder is set, and the Hugging Face hub cannot serve "
                          "uoft-cs/cifar10's plain_text/train-*.parquet: the hub cannot be reached"), err
    assert "set CONVNEXT_REPORT_DATA" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_command_line_needs_no_papermill() -> None:
    """papermill is the book's extra: ``train`` (and every packed run's process) imports without it."""
    code = "import sys, convnext_report.cli; assert 'papermill' not in sys.modules, 'cli imports papermill'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lib")})
    assert done.returncode == 0, done.stderr
