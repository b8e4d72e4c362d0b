"""The same loop under torchrun: 2 CPU processes with gloo on a tiny real-data subset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_two_process_gloo_run(tmp_path: Path, data_root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "convnext_report", "train",
        "dataset=cifar10", f"data_dir={data_root}", "max_classes=3", "train_per_class=16", "test_per_class=4",
        "batch_size=8", "epochs=2", "progress=false", "device=cpu", "out_dir=runs", "run_name=ddp",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("run folder: runs/ddp") == 1  # printed by rank 0 only
    folder = tmp_path / "runs" / "ddp"
    record = json.loads((folder / "record.json").read_text())
    assert record["world_size"] == 2 and record["status"] == "finished"
    history = pd.read_csv(folder / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    # 48 images / 2 processes / batch 8 = 3 steps per process; throughput counts both processes
    assert record["steps_per_epoch"] == 3
    assert (folder / "checkpoint_best.pt").is_file() and (folder / "eval.npz").is_file()
    assert not list(folder.glob("*.tmp"))
