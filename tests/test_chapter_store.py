"""Chapters and the result store on real tiny runs: reuse by key, training switch, deadline, provenance."""

from __future__ import annotations

import json
import time

import pytest

from convnext_report.report import chapter, paths, runner, switches

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(tmp_path, monkeypatch, data_root) -> list:
    """Send every folder to tmp_path and count the runs that are actually trained."""
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(paths.STORE_ENV, str(tmp_path / "results"))
    monkeypatch.setenv(paths.RECORDS_ENV, str(tmp_path / "records"))
    for name in (paths.PUBLISH_ENV, paths.SMOKE_ENV, switches.TRAIN_ENV, switches.DEADLINE_ENV):
        monkeypatch.delenv(name, raising=False)
    calls: list = []
    real = runner.train

    def counting(config, **kw):
        calls.append(config.run_name)
        return real(config, **kw)

    monkeypatch.setattr(runner, "train", counting)
    return calls


def namespace(data_root, **extra) -> dict:
    """A chapter's parameters: cifar10, 2 classes x 8 images, 1 epoch of 1 step."""
    return {"In": [""], "smoke": False, "dataset": "cifar10", "data_dir": str(data_root), "max_classes": 2,
            "train_per_class": 8, "test_per_class": 4, "model": "convnextv2_atto", "stem_stride": 2,
            "batch_size": 16, "epochs": 1, "device": "cpu", "seeds": [0, 1], **extra}


VARIANTS = {"a": {}, "b": {"lr": 1e-3}}


def test_a_second_sweep_trains_nothing(trained, data_root):
    first = chapter.start("06_t", namespace(data_root), title="T").sweep(VARIANTS)
    assert len(trained) == 4
    ch = chapter.start("06_t", namespace(data_root), title="T")
    again = ch.sweep(VARIANTS)
    assert len(trained) == 4, "runs found in the store must not be trained again"
    assert [g.source for g in ch.obtained] == ["store"] * 4
    for label in VARIANTS:
        assert [r.best["selection_acc"] for r in again[label]] == [r.best["selection_acc"] for r in first[label]]
    assert all((r.path / "store.json").is_file() for group in again.values() for r in group)
    # a changed config is a new run; the unchanged one is still found
    chapter.start("06_t", namespace(data_root, seeds=[0], epochs=2), title="T").sweep({"a": {}})
    assert len(trained) == 5


def test_records_say_where_runs_were_trained(trained, data_root):
    chapter.start("06_t", namespace(data_root, seeds=[0]), title="T").sweep({"a": {}})
    ch = chapter.start("06_t", namespace(data_root, seeds=[0, 1]), title="T")
    banner = ch.banner()
    ch.sweep({"a": {}})
    record = json.loads(ch.finish().read_text())
    assert [r["from"] for r in record["runs"]] == ["store", "trained"]
    assert record["provenance"]["from_store"] == 1 and record["provenance"]["trained_here"] == 1
    assert "1 read back from the result store" in banner.data and record["runs"][0]["key"]


def test_training_switched_off_names_the_missing_run(trained, data_root, monkeypatch):
    monkeypatch.setenv(switches.TRAIN_ENV, "0")
    ch = chapter.start("06_t", namespace(data_root, seeds=[3]), title="T")
    with pytest.raises(runner.MissingRunError, match=r"06_t: run 'a' \(seed 3, key \w{8}.*tools/device_run"):
        ch.sweep({"a": {}})
    assert trained == []


def test_deadline_skips_what_cannot_finish_and_keeps_the_rest(trained, data_root, monkeypatch):
    chapter.start("06_t", namespace(data_root, seeds=[0]), title="T").sweep({"a": {}})
    assert len(trained) == 1
    monkeypatch.setenv(switches.DEADLINE_ENV, str(time.time() + 5))  # less than any run's estimate
    ch = chapter.start("06_t", namespace(data_root, seeds=[0, 1]), title="T")
    with pytest.raises(runner.DeadlineError) as err:
        ch.sweep({"a": {}, "b": {"lr": 1e-3}})
    message = str(err.value)
    assert "3 run(s) not started" in message and "a (seed 1" in message and "b (seed 0" in message
    assert "a (seed 0" not in message and len(trained) == 1  # the stored run was used, nothing trained
    assert [g.source for g in ch.obtained] == ["store"]
    with pytest.raises(runner.DeadlineError, match="pretrain"):
        ch.train("pretrain", seed=5)


def test_weights_needed_trains_a_stored_run_again_once(trained, data_root, monkeypatch, tmp_path):
    """Chapter 3: its run is stored, but chapters 4-5 need the weights, which are not on this machine."""
    first = chapter.start("03_t", namespace(data_root, seeds=[0]), title="T").train("pretrain", weights=True)
    assert len(trained) == 1 and (first.path / "checkpoint_best.pt").is_file()
    chapter.start("03_t", namespace(data_root, seeds=[0]), title="T").train("pretrain", weights=True)
    assert len(trained) == 1, "weights here: nothing to train"
    for ckpt in first.path.glob("*.pt"):  # a fresh machine: the store has the run, the weights are gone
        ckpt.unlink()
    monkeypatch.setenv(switches.TRAIN_ENV, "0")
    stored = chapter.start("03_t", namespace(data_root, seeds=[0]), title="T").train("pretrain", weights=True)
    assert len(trained) == 1 and (stored.path / "store.json").is_file()  # training off: the stored run
    monkeypatch.delenv(switches.TRAIN_ENV)
    import shutil

    shutil.rmtree(first.path)
    again = chapter.start("03_t", namespace(data_root, seeds=[0]), title="T").train("pretrain", weights=True)
    assert len(trained) == 2 and (again.path / "checkpoint_best.pt").is_file()
    entries = list((tmp_path / "runs" / "results" / "03_t").iterdir())
    assert len(entries) == 1  # the entry was replaced, not duplicated


def test_publishing_copies_the_local_runs_a_chapter_uses(trained, data_root, monkeypatch, tmp_path):
    chapter.start("06_t", namespace(data_root, seeds=[0]), title="T").sweep({"a": {}})
    assert not (tmp_path / "results").exists() and (tmp_path / "runs" / "results" / "06_t").is_dir()
    monkeypatch.setenv(paths.PUBLISH_ENV, "1")
    ch = chapter.start("06_t", namespace(data_root, seeds=[0]), title="T")
    ch.sweep({"a": {}})
    assert len(trained) == 1 and ch.obtained[0].entry.path.parent == tmp_path / "results" / "06_t"
    assert (tmp_path / "results" / "06_t" / ch.obtained[0].entry.path.name / "store.json").is_file()
