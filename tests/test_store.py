"""The result store: keys, pretrained identity, entries (round trip, no weights, size), layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from convnext_report.config import TrainConfig, save_config
from convnext_report.evaluation import EvalResult
from convnext_report.report import store
from convnext_report.selection import HISTORY_COLUMNS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _folders(book_folders):
    """Every test here works in temporary book folders."""


def finished_run(folder: Path, config: TrainConfig, *, n_test: int = 40, classes: int = 4, epochs: int = 3) -> Path:
    """A run folder as ``training.train`` leaves it: small files, eval arrays and two checkpoints."""
    folder.mkdir(parents=True)
    save_config(config, folder / "config.yaml")
    rng = np.random.default_rng(0)
    history = [{"epoch": e + 1, "train_loss": 2.0 - 0.1 * e, "train_acc": 0.3 + 0.01 * e, "selection_loss": 2.1,
                "selection_acc": 0.25 + 0.01 * e, "selection_top5": 0.6, "lr": 1e-3, "seconds": 12.5,
                "images_per_second": 4000.0} for e in range(epochs)]
    pd.DataFrame(history, columns=list(HISTORY_COLUMNS)).to_csv(folder / "history.csv", index=False)
    record = {"status": "finished", "stop_reason": "epochs", "device": "cuda:0", "device_name": "NVIDIA H100",
              "end_time": "2026-11-20T10:00:00+00:00", "wall_time_seconds": 37.5, "best_epoch": epochs,
              "best_selection_top1": 0.27, "git": {"commit": "abc"}, "class_names": [f"c{i}" for i in range(classes)]}
    (folder / "record.json").write_text(json.dumps(record))
    labels = rng.integers(0, classes, n_test)
    top5 = np.stack([rng.permutation(classes)[:min(5, classes)] for _ in range(n_test)])
    EvalResult(labels=labels, predictions=top5[:, 0], top5_predictions=top5, confidence=rng.random(n_test),
               loss=2.0, class_names=[f"c{i}" for i in range(classes)]).save(folder)
    (folder / "log.txt").write_text("epoch 1/3 ...\n" * epochs)
    (folder / "dyt_alpha.csv").write_text("epoch,layer,alpha\n0,stem.1,0.5\n")
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        torch.save({"model": {"w": torch.ones(3)}}, folder / name)
    (folder / "weights.safetensors").write_bytes(b"\0" * 64)
    return folder


# ---------------------------------------------------------------- keys


def test_same_config_same_key_runtime_keys_ignored():
    a = TrainConfig(lr=1e-3)
    runtime = dict(device="cuda", progress=False, out_dir="/elsewhere", run_name="x", resume=True,
                   data_dir="/data", compile=True, extra={"label": "other"})
    assert store.run_key(a) == store.run_key(TrainConfig(lr=1e-3)) == store.run_key(a.replace(**runtime))
    assert len(store.run_key(a)) == 64


@pytest.mark.parametrize("change", [dict(lr=3e-3), dict(seed=1), dict(epochs=31), dict(norm="dyt"),
                                    dict(max_steps_per_epoch=3), dict(amp=False)])
def test_a_changed_config_is_a_new_key(change):
    assert store.run_key(TrainConfig()) != store.run_key(TrainConfig(**change))


def test_a_bumped_store_version_is_a_new_key(monkeypatch):
    before = store.run_key(TrainConfig())
    monkeypatch.setattr(store, "STORE_VERSION", store.STORE_VERSION + 1)
    assert store.run_key(TrainConfig()) != before


def test_pretrained_identity(tmp_path):
    assert store.pretrained_identity(TrainConfig()) is None
    assert store.pretrained_identity(TrainConfig(pretrained="convnext_tiny.fb_in1k")) == "timm:convnext_tiny.fb_in1k"
    # a backbone exported by chapter 3: the store key of its run, wherever the file is
    for where in ("here", "there"):
        (tmp_path / where).mkdir()
        torch.save({"model": {"w": torch.ones(1) * (where == "here")}}, tmp_path / where / "bb.pt")
        (tmp_path / where / "bb.json").write_text(json.dumps({"store_key": "k" * 64}))
    a, b = (TrainConfig(pretrained=str(tmp_path / w / "bb.pt")) for w in ("here", "there"))
    assert store.pretrained_identity(a) == f"run:{'k' * 64}" and store.run_key(a) == store.run_key(b)
    # any other file: its sha256 (same bytes, same key; other bytes, another key)
    (tmp_path / "here" / "bb.json").unlink()
    (tmp_path / "there" / "bb.json").unlink()
    assert store.pretrained_identity(a).startswith("sha256:") and store.run_key(a) != store.run_key(b)
    # the tag the transfer chapters set wins (the weights may be on another machine)
    tagged = TrainConfig(pretrained="/nowhere/bb.pt", extra={store.IDENTITY_TAG: "run:abc"})
    assert store.pretrained_identity(tagged) == "run:abc"
    with pytest.raises(FileNotFoundError, match="not a file"):
        store.run_key(TrainConfig(pretrained="/nowhere/bb.pt"))


# ---------------------------------------------------------------- entries


def test_round_trip_keeps_every_small_file_and_no_weights(tmp_path):
    config = TrainConfig(lr=1e-3, data_dir="/gpu/machine/data", out_dir=str(tmp_path / "runs"), run_name="r")
    folder = finished_run(tmp_path / "runs" / "r", config)
    for litter in (".lock", "checkpoint_last.pt.tmp", "store.json"):  # a lock, a cut-short write, an old marker
        (folder / litter).write_text("x")
    key = store.run_key(config)
    entry = store.put(folder, key=key, chapter="06_x", label="a / b", seed=0, smoke=False)
    assert entry.path == tmp_path / "runs" / "results" / "06_x" / f"a_b-s0-{key[:8]}"  # not publishing: local
    names = {p.name for p in entry.path.iterdir()}
    assert names == {"config.yaml", "history.csv", "record.json", "eval.json", "eval.npz", "log.txt",
                     "dyt_alpha.csv", "store.json"}
    meta = json.loads((entry.path / "store.json").read_text())
    assert meta["key"] == key and meta["store_version"] == store.STORE_VERSION and meta["label"] == "a / b"
    assert meta["gpu_seconds"] == 37.5 and meta["trained_on"] == "NVIDIA H100" and set(meta["files"]) == names - {"store.json"}
    assert yaml.safe_load((entry.path / "config.yaml").read_text())["data_dir"] is None
    # found by key, not by name; loads as a Run without weights
    assert store.find(key, smoke=False).path == entry.path and store.find(key, smoke=True) is None
    request = config.replace(data_dir=None, device="cpu", extra={"label": "a / b"})
    run = store.load(store.find(key, smoke=False), request)
    assert run.config == request and len(run.history) == 3 and run.eval.num_images == 40
    assert run.eval.confusion_matrix.sum() == 40
    with pytest.raises(FileNotFoundError, match="holds no checkpoint_best.pt: train the run again"):
        run.load_model()
    # again: the same entry, nothing rewritten
    assert store.put(folder, key=key, chapter="06_x", label="a / b", seed=0, smoke=False).meta == entry.meta


def test_a_changed_file_is_reported(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path), run_name="r")
    entry = store.put(finished_run(tmp_path / "r", config), key=store.run_key(config), chapter="c", label="l",
                      seed=0, smoke=True)
    assert entry.path.parent.parent.name == "smoke" and store.verify(entry) == []
    (entry.path / "history.csv").write_text("epoch\n")
    assert store.verify(entry) == ["history.csv changed since it was stored"]
    with pytest.raises(store.StoreError, match="damaged"):
        store.load(entry)


def test_unfinished_runs_are_not_stored(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path), run_name="r")
    folder = finished_run(tmp_path / "r", config)
    (folder / "record.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(store.StoreError, match="not finished"):
        store.put(folder, key=store.run_key(config), chapter="c", label="l", seed=0, smoke=False)


def test_full_size_entry_stays_small(tmp_path):
    """10,000 evaluated images of 100 classes and 50 epochs (a full CIFAR-100 run) stay under the limit."""
    config = TrainConfig(dataset="cifar100", out_dir=str(tmp_path), run_name="r")
    folder = finished_run(tmp_path / "r", config, n_test=10_000, classes=100, epochs=50)
    entry = store.put(folder, key=store.run_key(config), chapter="c", label="l", seed=0, smoke=False)
    assert entry.bytes < store.MAX_ENTRY_BYTES, entry.bytes
    with np.load(entry.path / "eval.npz") as z:
        assert z["top5_predictions"].dtype == np.uint8 and z["confidence"].dtype == np.float16


def test_layers_read_local_first_and_write_local_only(tmp_path, book_copy):
    assert store.layers("results") == [tmp_path / "runs" / "results", book_copy / "results"]
    assert store.layers("records") == [tmp_path / "runs" / "records", book_copy / "book" / "records"]
    config = TrainConfig(out_dir=str(tmp_path), run_name="r")
    key = store.run_key(config)
    local = store.put(finished_run(tmp_path / "r", config), key=key, chapter="c", label="l", seed=0, smoke=False)
    assert local.path.parent == tmp_path / "runs" / "results" / "c" and not (book_copy / "results").exists()
    committed = book_copy / "results" / "c" / local.path.name
    committed.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(local.path, committed)
    assert store.find(key, smoke=False).path == local.path  # the local layer wins
    shutil.rmtree(local.path)
    assert store.find(key, smoke=False).path == committed
    assert store.attach(store.find(key, smoke=False), "x.json", "{}").path == committed
    assert not (committed / "x.json").exists(), "the committed layer is written by publish only"


def test_the_committed_store_holds_no_weights():
    results = REPO / "results"
    weights = [p for s in store.WEIGHT_SUFFIXES for p in results.rglob(f"*{s}")] if results.is_dir() else []
    assert not weights, f"weights in the committed result store: {weights}"
    for meta in results.rglob("store.json") if results.is_dir() else []:
        entry = store.Entry(meta.parent, json.loads(meta.read_text()))
        assert entry.bytes < store.MAX_ENTRY_BYTES and store.verify(entry) == [], meta.parent


def test_inactive_settings_stay_out_of_the_key():
    """Changing dyt_alpha_init retrains no LayerNorm run, and does retrain a DyT run (issue 14)."""
    ln, dyt = TrainConfig(norm="layernorm"), TrainConfig(norm="dyt")
    assert store.run_key(ln) == store.run_key(ln.replace(dyt_alpha_init=1.0))
    assert store.run_key(dyt) != store.run_key(dyt.replace(dyt_alpha_init=1.0))
    frozen = TrainConfig(freeze_backbone=True, head_weight_decay=1e-4)
    for change in (dict(drop_path_rate=0.3), dict(backbone_lr_scale=0.1), dict(layer_decay=0.8),
                   dict(weight_decay=0.5), dict(head_num_heads=4), dict(model_ema_decay=0.99)):
        assert store.run_key(frozen) == store.run_key(frozen.replace(**change)), change
    assert store.run_key(frozen) != store.run_key(frozen.replace(head_weight_decay=1e-3))
    assert store.run_key(TrainConfig(schedule="constant")) == store.run_key(TrainConfig(schedule="constant",
                                                                                        min_lr_ratio=0.5))
    assert store.run_key(TrainConfig()) != store.run_key(TrainConfig(min_lr_ratio=0.5))
    assert store.run_key(TrainConfig(selection="test")) == store.run_key(TrainConfig(selection="test",
                                                                                     holdout_fraction=0.2))
