"""Whole runs on a tiny real-data subset: run folder, early stopping, NaN guard, frozen fast path (resume and
kills: test_reliability.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from convnext_report import parts
from convnext_report.config import TrainConfig
from convnext_report.engine import NonFiniteLossError
from convnext_report.runfolder import load_run
from convnext_report.selection import HISTORY_COLUMNS
from convnext_report.training import train

pytestmark = pytest.mark.slow




def test_run_folder_layout_and_run_object(tiny: TrainConfig) -> None:
    run = train(tiny.replace(test_every_epoch=True))
    names = {p.name for p in run.path.iterdir()}
    assert names == {"config.yaml", "log.txt", "history.csv", "record.json", "checkpoint_last.pt",
                     "checkpoint_best.pt", "eval.json", "eval.npz"}
    history = pd.read_csv(run.path / "history.csv")
    assert list(history.columns) == list(HISTORY_COLUMNS) and history["epoch"].tolist() == [1, 2]  # from 1
    record = json.loads((run.path / "record.json").read_text())
    for key in ("device_name", "versions", "git", "seed", "wall_time_seconds", "start_time", "end_time",
                "best_epoch", "best_selection_top1", "best_selection_top5", "num_train_images", "num_selection_images",
                "stop_reason"):
        assert key in record, key
    assert record["status"] == "finished" and record["stop_reason"] == "epochs"
    # selection="holdout" (the default): 2 of each class's 16 training images select the epoch
    assert (record["num_train_images"], record["num_selection_images"], record["num_test_images"]) == (56, 8, 32)
    assert record["selection"] == "holdout"
    assert record["versions"]["torch"] and record["device_name"] and "commit" in record["git"]
    ev = json.loads((run.path / "eval.json").read_text())
    assert len(ev["per_class_accuracy"]) == 4 and ev["class_names"][:2] == ["airplane", "automobile"]
    # the epoch is selected on the held-out images; the test split is reported at that epoch
    best = int(history["selection_acc"].idxmax())
    assert run.best["epoch"] == record["best_epoch"] == history.loc[best, "epoch"] == best + 1
    assert run.best["selection_acc"] == pytest.approx(history["selection_acc"].max()) == record["best_selection_top1"]
    assert torch.load(run.path / "checkpoint_best.pt", weights_only=True)["epoch"] == best + 1
    assert torch.load(run.path / "checkpoint_last.pt", weights_only=True)["epoch"] == 2  # the last finished epoch
    assert ev["top1"] == pytest.approx(history.loc[best, "test_acc"]) == pytest.approx(record["final_top1"])
    assert record["peeked_top1"] == pytest.approx(history["test_acc"].max())
    with np.load(run.path / "eval.npz") as z:  # compact: no stored confusion matrix (recomputed on load)
        assert "confusion_matrix" not in z.files and len(z["predictions"]) == 32
    assert run.eval.confusion_matrix.shape == (4, 4)
    assert "run folder" in (run.path / "log.txt").read_text()

    again = load_run(run.path)
    assert again.config == run.config.replace(run_name="tiny") and len(again.history) == 2
    assert again.eval.top1 == pytest.approx(run.eval.top1)
    assert again.history_df["selection_acc"].tolist() == pytest.approx(history["selection_acc"].tolist())
    model = again.load_model()
    test = again.test_data()
    assert len(test.labels) == 32
    from convnext_report.data import DeviceLoader, get_dataset_spec, make_eval_transform
    from convnext_report.engine import evaluate

    spec = get_dataset_spec("cifar10")
    loader = DeviceLoader(test, 16, transform=make_eval_transform(spec, 32), shuffle=False,
                          drop_last=False, device="cpu")
    result = evaluate(model, loader, device=torch.device("cpu"), class_names=test.class_names)
    np.testing.assert_array_equal(result.predictions, again.eval.predictions)


def test_existing_folder_is_never_overwritten(tiny: TrainConfig) -> None:
    train(tiny.replace(epochs=1))
    with pytest.raises(FileExistsError, match="resume=True.*new run_name"):
        train(tiny.replace(epochs=1))
    # a finished run is loaded, not retrained
    history = Path(tiny.out_dir) / "tiny" / "history.csv"
    before = history.read_text()
    run = train(tiny.replace(epochs=1, resume=True))
    assert run.record["status"] == "finished" and history.read_text() == before


def test_early_stopping_restores_the_best_epoch(tiny: TrainConfig) -> None:
    # lr 0: the weights never change, selection accuracy cannot improve after the first epoch, patience 1 stops after
    # the second epoch; selection="test" (the sources' protocol) selects on the reported split itself
    run = train(tiny.replace(epochs=6, early_stopping_patience=1, schedule="constant", lr=0.0, selection="test"))
    assert run.record["stop_reason"] == "early_stopping"
    assert len(run.history) == 2 and run.best["epoch"] == 1 and run.record["best_epoch"] == 1
    assert run.eval.top1 == pytest.approx(run.history[0]["selection_acc"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny: TrainConfig, monkeypatch) -> None:
    real = parts.build_criterion

    def nan_in_second_epoch(config, *, mixup):
        inner, calls = real(config, mixup=mixup), []

        def criterion(logits, target):
            calls.append(1)
            loss = inner(logits, target)
            return loss * float("nan") if len(calls) > 2 else loss  # 2 steps per epoch

        return criterion

    monkeypatch.setattr(parts, "build_criterion", nan_in_second_epoch)
    with pytest.raises(NonFiniteLossError,
                       match=r"epoch 2, step 1/2.*grad_clip.*checkpoint_last.pt \(epoch 1, the last good epoch\)"):
        train(tiny)
    folder = Path(tiny.out_dir) / "tiny"
    assert torch.load(folder / "checkpoint_last.pt", weights_only=True)["epoch"] == 1
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "failed" and record["stop_reason"] == "non_finite_loss"


def test_a_run_stopped_in_its_first_epoch_records_no_best_epoch(tiny: TrainConfig, monkeypatch) -> None:
    def nan_loss(config, *, mixup):
        return lambda logits, target: logits.sum() * math.nan

    monkeypatch.setattr(parts, "build_criterion", nan_loss)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step 1/2.*no epoch had finished"):
        train(tiny)
    record = json.loads((Path(tiny.out_dir) / "tiny" / "record.json").read_text())
    assert record["best_epoch"] is None and record["best_selection_top1"] is None and record["epochs_run"] == 0


def test_huge_learning_rate_is_caught(tiny: TrainConfig) -> None:
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        train(tiny.replace(optimizer="sgd", lr=1e6, epochs=3, warmup_epochs=0.0, drop_path_rate=0.0))


def _train_with_snapshots(config: TrainConfig):
    """Run ``config`` and return it with the model weights saved after each epoch."""
    snaps = []
    folder = f"{config.out_dir}/{config.run_name}"
    run = train(config, on_epoch_end=lambda row: snaps.append(
        torch.load(folder + "/checkpoint_last.pt", weights_only=True)["model"]))
    return run, snaps


@pytest.mark.parametrize("augment", [False, True], ids=["cached-features", "augmented"])
def test_frozen_backbone_trains_the_head_only(tiny: TrainConfig, augment: bool) -> None:
    config = tiny.replace(freeze_backbone=True, crop_padding=4 if augment else 0, hflip=augment, head_dropout=0.2)
    run, (first, second) = _train_with_snapshots(config)
    # without augmentation the backbone features are computed once; with it, every step (backbone in eval mode)
    assert run.record["frozen_feature_fast_path"] is not augment
    assert run.record["params_trainable"] < run.record["params_total"]
    for name in first:
        if not name.startswith("head."):
            assert torch.equal(first[name], second[name]), name
    assert not torch.equal(first["head.fc.weight"], second["head.fc.weight"])


def test_mixup_cutmix_label_smoothing_attention_head(tiny: TrainConfig) -> None:
    run = train(tiny.replace(mixup=0.8, cutmix=1.0, label_smoothing=0.1, head="attention", head_dropout=0.2,
                             randaugment="n2m9", epochs=1))
    assert np.isfinite(run.history[0]["train_loss"])
