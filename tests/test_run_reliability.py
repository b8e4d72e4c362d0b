"""Model selection without peeking, and a run folder that survives kills, races and bad luck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from convnext_report.config import TrainConfig
from convnext_report.data import DeviceLoader, get_dataset_spec, load_split, make_eval_transform
from convnext_report.data.subsets import holdout_split
from convnext_report.engine import evaluate
from convnext_report.parts import load_data, split_sizes
from convnext_report.training import rng_state, set_rng_state
from convnext_report.runfolder import CHECKPOINT_BEST, CHECKPOINT_LAST, RunFolder
from convnext_report.training import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]




class _Killed(RuntimeError):
    pass


def test_holdout_is_class_balanced_disjoint_and_seeded() -> None:
    labels = torch.arange(10).repeat_interleave(50)
    kept, held = holdout_split(labels, 0.1, seed=0)
    assert torch.bincount(labels[held]).tolist() == [5] * 10 and len(kept) == 450
    assert not set(kept.tolist()) & set(held.tolist())
    assert torch.equal(holdout_split(labels, 0.1, seed=0)[1], held)
    assert not torch.equal(holdout_split(labels, 0.1, seed=1)[1], held)
    with pytest.raises(ValueError, match="selection='test'"):
        holdout_split(torch.tensor([0, 1, 1]), 0.5)


def test_holdout_selects_and_the_test_split_is_reported_once(tiny: TrainConfig) -> None:
    run = train(tiny)
    train_rows, held_rows = load_data(tiny, "train").rows, load_data(tiny, "holdout").rows
    assert len(held_rows) == 8 and not set(train_rows.tolist()) & set(held_rows.tolist())
    assert run.history_df["test_acc"].isna().all()  # the test split was not looked at during training
    assert run.record["peeked_top1"] is None and run.eval.num_images == 32
    assert split_sizes(tiny) == (len(train_rows), len(held_rows), 32)  # what the plan and workers count
    # the reported number is the test split evaluated with the selected (best held-out) epoch's weights
    model, test = run.load_model("best"), run.test_data()
    spec = get_dataset_spec("cifar10")
    loader = DeviceLoader(test, 16, transform=make_eval_transform(spec, 32), shuffle=False,
                          drop_last=False, device="cpu")
    result = evaluate(model, loader, device=torch.device("cpu"), class_names=test.class_names)
    assert result.top1 == pytest.approx(run.record["final_top1"]) == pytest.approx(run.eval.top1)
    assert torch.load(run.path / CHECKPOINT_BEST, weights_only=True)["epoch"] == run.best["epoch"]


def test_a_folder_in_use_is_refused_and_default_names_are_unique(tiny: TrainConfig) -> None:
    holder = RunFolder(Path(tiny.out_dir) / "busy", is_main=True)
    holder.claim()
    try:
        with pytest.raises(RuntimeError, match="in use by another process"):
            train(tiny.replace(run_name="busy", resume=True))
    finally:
        holder.release()
    assert not (Path(tiny.out_dir) / "busy" / ".lock").exists()
    a = train(tiny.replace(run_name=None, epochs=1))
    b = train(tiny.replace(run_name=None, epochs=1))
    assert a.path != b.path and a.path.name.startswith("convnextv2_atto-cifar10-s0-")


def test_a_failure_while_finishing_marks_the_run_failed(tiny: TrainConfig, monkeypatch) -> None:
    def disk_full(self, result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunFolder, "save_eval", disk_full)
    with pytest.raises(OSError, match="No space"):
        train(tiny)
    record = json.loads((Path(tiny.out_dir) / "tiny" / "record.json").read_text())
    assert record["status"] == "failed" and "No space left" in record["error"]


def test_a_run_that_cannot_start_leaves_no_folder(tiny: TrainConfig, tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        train(tiny.replace(data_dir=str(tmp_path / "nowhere")))
    assert not (Path(tiny.out_dir) / "tiny").exists()


def test_sigterm_marks_the_run_failed_and_it_resumes(tiny: TrainConfig) -> None:
    cfg = tiny.replace(epochs=50)
    args = [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in cfg.to_dict().items()
            if v is not None and k != "extra"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "lib"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "convnext_report", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    record_file = Path(cfg.out_dir) / "tiny" / "record.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (record_file.is_file()
                                          and json.loads(record_file.read_text()).get("epochs_run", 0) >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    record = json.loads(record_file.read_text())
    assert proc.returncode == 128 + signal.SIGTERM, out.decode()[-2000:]
    assert record["status"] == "failed" and record["stop_reason"] == "terminated"
    assert not (record_file.parent / ".lock").exists()
    assert "resume=true" in out.decode()


def test_dyt_alphas_are_logged_every_epoch_and_logs_can_stay_quiet(tiny: TrainConfig, capsys) -> None:
    run = train(tiny.replace(norm="dyt"))
    alphas = pd.read_csv(run.path / "dyt_alpha.csv")
    assert sorted(alphas["epoch"].unique()) == [0, 1, 2]  # 0: the initial values, k: after epoch k
    assert run.history_df["epoch"].tolist() == [1, 2]
    assert (alphas[alphas["epoch"] == 0]["alpha"] == 0.5).all() and alphas["layer"].nunique() > 10
    assert capsys.readouterr().out == ""  # verbose=False
    assert "epoch 2/2" in (run.path / "log.txt").read_text()
    assert not (train(tiny.replace(run_name="ln")).path / "dyt_alpha.csv").exists()


def test_rng_state_keeps_only_this_device(tmp_path) -> None:
    state = rng_state(torch.device("cpu"))
    assert "cuda" not in state
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    saved = rng_state(torch.device("cpu"))
    set_rng_state({**saved, "cuda": [torch.zeros(8, dtype=torch.uint8)] * 8}, torch.device("cpu"))  # 8 GPUs saved
    assert torch.equal(torch.rand(3), expected)


def test_a_stored_normalisation_overrides_the_dataset_statistics(tiny: TrainConfig) -> None:
    from convnext_report.parts import normalization

    assert normalization(tiny) == (list(get_dataset_spec("cifar10").mean), list(get_dataset_spec("cifar10").std))
    assert normalization(tiny.replace(normalize_mean=[0.5] * 3, normalize_std=[0.25] * 3)) == ([0.5] * 3, [0.25] * 3)
    test = load_split("cifar10", "test", data_dir=tiny.data_dir, per_class=1, max_classes=1)
    assert len(test) == 1


def test_model_ema_is_evaluated_beside_the_raw_weights_and_resumes(tiny: TrainConfig, monkeypatch) -> None:
    ema = tiny.replace(model_ema=True, model_ema_decay=0.5, epochs=3)
    reference = train(ema.replace(run_name="reference"))
    assert reference.history_df["ema_selection_acc"].notna().all() and reference.record["ema_final_top1"] is not None
    assert torch.load(reference.path / CHECKPOINT_LAST, weights_only=True)["model_ema"]

    def killed(row):
        if row["epoch"] == 2:
            raise _Killed("killed after epoch 2")

    with pytest.raises(_Killed):
        train(ema, on_epoch_end=killed)
    assert torch.load(Path(ema.out_dir) / "tiny" / CHECKPOINT_LAST, weights_only=True)["epoch"] == 2
    resumed = train(ema.replace(resume=True))
    np.testing.assert_allclose(resumed.history_df["ema_selection_acc"], reference.history_df["ema_selection_acc"], atol=1e-6)
    assert resumed.record["ema_final_top1"] == pytest.approx(reference.record["ema_final_top1"])
