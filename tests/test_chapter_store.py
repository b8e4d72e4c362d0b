"""Chapters and the result store on real tiny runs: reuse by key, provenance, weights, the runner's hooks."""

from __future__ import annotations

import json
import shutil

import pytest

from convnext_report.report import chapter, runner, store

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(book_folders, monkeypatch) -> list:
    """The local layer in tmp_path; count the runs that are actually trained."""
    calls: list = []
    real = runner.train

    def counting(config, **kw):
        calls.append(config.run_name)
        return real(config, **kw)

    monkeypatch.setattr(runner, "train", counting)
    return calls


def namespace(data_root, **extra) -> dict:
    """A chapter's parameters: cifar10, 2 classes x 8 images, 1 epoch of 1 step."""
    return {"smoke": False, "dataset": "cifar10", "data_dir": str(data_root), "max_classes": 2,
            "train_per_class": 8, "test_per_class": 4, "model": "convnextv2_atto", "stem_stride": 2,
            "batch_size": 16, "epochs": 1, "device": "cpu", "seeds": [0, 1], "lr": 2e-3, **extra}


def start(name: str, data_root, **extra) -> chapter.Chapter:
    return chapter.start(name, namespace(data_root, **extra), title="T", defaults=namespace(data_root))


VARIANTS = {"a": {}, "b": {"lr": 1e-3}}


def test_a_second_sweep_trains_nothing(trained, data_root):
    first = start("06_t", data_root).sweep(VARIANTS)
    assert len(trained) == 4
    ch = start("06_t", data_root)
    again = ch.sweep(VARIANTS)
    assert len(trained) == 4, "runs found in the store must not be trained again"
    assert [g.source for g in ch.obtained] == ["store"] * 4
    for label in VARIANTS:
        assert [r.best["selection_acc"] for r in again[label]] == [r.best["selection_acc"] for r in first[label]]
    assert all((r.path / "store.json").is_file() for group in again.values() for r in group)
    # a changed config is a new run; the unchanged one is still found
    start("06_t", data_root, seeds=[0], epochs=2).sweep({"a": {}})
    assert len(trained) == 5


def test_records_say_where_runs_were_trained(trained, data_root):
    start("06_t", data_root, seeds=[0]).sweep({"a": {}})
    ch = start("06_t", data_root, seeds=[0, 1])
    ch.sweep({"a": {}})
    record = json.loads(ch.finish().read_text())
    assert [r["from"] for r in record["runs"]] == ["store", "trained"] and record["runs"][0]["key"]
    assert "Its runs: 2 runs (1 from the store) on " in chapter.chapter_banner(record)


def test_the_runner_asks_before_each_start_and_reports_each_stored_run(trained, data_root):
    ch = start("06_t", data_root, seeds=[0, 1, 2])
    found = [runner.prepare("06_t", "a", ch.config(seed=s), smoke=False) for s in (0, 1, 2)]
    asked, told = [], []
    done, not_started = runner.train_missing(found, may_start=lambda p: asked.append(p.key) or p.config.seed != 1,
                                             on_stored=lambda p, got: told.append((p.key, got.entry.path.name)))
    assert asked == [p.key for p in found] and [p.config.seed for p in not_started] == [1]
    assert [g.run.config.seed for g in done] == [0, 2] and len(trained) == 2
    assert told == [(g.key, g.entry.path.name) for g in done] and all(g.seconds > 0 for g in done)


def test_packed_runs_each_train_in_a_process_and_are_stored_as_they_finish(trained, data_root):
    """The GPU path on a CPU: two runs at once, each in its own process (packing.train_many), both stored."""
    ch = start("06_t", data_root, seeds=[0, 1])
    found = [runner.prepare("06_t", "a", ch.config(seed=s), smoke=False) for s in (0, 1)]
    told = []
    done, not_started = runner.train_missing(found, workers=2, on_stored=lambda p, got: told.append(p.config.seed))
    assert not trained and not not_started, "trained in child processes, not in this one"
    assert sorted(told) == [0, 1] and [g.run.config.seed for g in done] == [0, 1]
    assert all((g.entry.path / "store.json").is_file() and g.run.record["status"] == "finished" for g in done)


def test_weights_needed_trains_a_stored_run_again_once(trained, data_root, tmp_path):
    """Chapter 3: its run is stored, but chapters 4-5 need the weights, which are not on this machine."""
    first = start("03_t", data_root, seeds=[0]).sweep({"pretrain": {}}, weights=True)["pretrain"][0]
    assert len(trained) == 1 and (first.path / "checkpoint_best.pt").is_file()
    start("03_t", data_root, seeds=[0]).sweep({"pretrain": {}}, weights=True)
    assert len(trained) == 1, "weights here: nothing to train"
    shutil.rmtree(first.path)  # a fresh machine: the store has the run, the weights are gone
    stored = start("03_t", data_root, seeds=[0]).sweep({"pretrain": {}})["pretrain"][0]
    assert len(trained) == 1 and (stored.path / "store.json").is_file()  # weights not asked for: the stored run
    again = start("03_t", data_root, seeds=[0]).sweep({"pretrain": {}}, weights=True)["pretrain"][0]
    assert len(trained) == 2 and (again.path / "checkpoint_best.pt").is_file()
    entries = list((tmp_path / "runs" / "results" / "03_t").iterdir())
    assert len(entries) == 1  # the entry was replaced, not duplicated


def test_a_diverged_run_is_stored_and_any_other_failure_is_raised(trained, data_root, monkeypatch):
    """A run stopped by a non-finite loss is a result (kept to its last finite epoch, stored); without that stop
    the error is raised."""
    from convnext_report import parts
    from convnext_report.engine import NonFiniteLossError

    real = parts.build_criterion

    def nan_in_second_epoch(config, *, mixup):
        inner, calls = real(config, mixup=mixup), []

        def criterion(logits, target):
            calls.append(1)
            return inner(logits, target) * (float("nan") if len(calls) > 1 else 1.0)  # 1 step per epoch

        return criterion

    monkeypatch.setattr(parts, "build_criterion", nan_in_second_epoch)
    ch = start("06_t", data_root, seeds=[0], epochs=3)
    done, _ = runner.train_missing([runner.prepare("06_t", "a", ch.config(seed=0), smoke=False)])
    assert done[0].run.record["stop_reason"] == "non_finite_loss" and (done[0].entry.path / "store.json").is_file()

    def broken(config, **kw):
        raise NonFiniteLossError("no record: not a diverged run")

    monkeypatch.setattr(runner, "train", broken)
    with pytest.raises(NonFiniteLossError, match="no record"):
        runner.train_missing([runner.prepare("06_t", "b", ch.config(seed=1), smoke=False)])
