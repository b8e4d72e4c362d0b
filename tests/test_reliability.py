"""The README's Reliability promises, one class of failure each: kills at chosen moments (SIGKILL, no
cleanup), damaged and foreign folders, changed settings, non-finite numbers, strict JSON."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from convnext_report.atomic import write_json_atomic
from convnext_report.config import TrainConfig, save_config
from convnext_report.engine import NonFiniteLossError
from convnext_report.evaluation import EvalResult
from convnext_report.models import build_model
from convnext_report.runfolder import CHECKPOINT_BEST, CHECKPOINT_LAST, Run, RunFolderError, load_run
from convnext_report.training import train

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
TIMING = ["seconds", "images_per_second"]  # the only history columns that may differ between two runs
#: patience 1 with lr 0: nothing improves after epoch 1, so the run stops early after epoch 2 of 6
EARLY = dict(epochs=6, early_stopping_patience=1, schedule="constant", lr=0.0, selection="test")
#: run name -> (file, k, before/after its k-th atomic replace, config changes): where the run SIGKILLs itself
KILLS = {
    "mid-write": ("checkpoint_last.pt", 1, "before", {}),  # epoch 1's checkpoint complete, not yet in place
    "between-checkpoints": ("checkpoint_last.pt", 1, "after", {}),  # the best epoch 1: checkpoint_best not written
    "last-epoch-save": ("checkpoint_last.pt", 2, "after", {}),  # last epoch: best, history and record not written
    "finishing": ("eval.npz", 1, "after", {}),  # evaluated, record not yet "finished"
    "early-stopped": ("checkpoint_last.pt", 2, "after", EARLY),  # the epoch that stops the run early
    "damaged": ("checkpoint_last.pt", 2, "after", {}),  # its checkpoint is damaged by the test
}


def _strict_json(path: Path) -> dict:
    """The JSON object in ``path``, read by a strict parser (a bare NaN or Infinity is an error)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def config(make_tiny, runs: Path):
    """The tiny run named ``name`` in the module's runs folder, with ``changes``."""
    return lambda name, **changes: make_tiny(runs).replace(run_name=name, **changes)


def _assert_consistent(run: Run) -> None:
    """Every file of a finished run agrees: history, record, both checkpoints; strict JSON; no temporary files."""
    folder, record = run.path, _strict_json(run.path / "record.json")
    history = pd.read_csv(folder / "history.csv")
    last = torch.load(folder / CHECKPOINT_LAST, weights_only=True)
    assert record["status"] == "finished" and record["epochs_run"] == len(history) == last["epoch"]
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    assert record["best_epoch"] == last["best"]["epoch"] == torch.load(folder / CHECKPOINT_BEST,
                                                                       weights_only=True)["epoch"]
    assert not list(folder.glob(".*.tmp"))
    for name in ("eval.json", "record.json"):
        _strict_json(folder / name)


def _assert_same_result(run: Run, reference: Run) -> None:
    pd.testing.assert_frame_equal(run.history_df.drop(columns=TIMING), reference.history_df.drop(columns=TIMING),
                                  rtol=1e-5)
    assert run.best["epoch"] == reference.best["epoch"] and run.record["stop_reason"] == reference.record["stop_reason"]
    assert run.eval.top1 == pytest.approx(reference.eval.top1)


@pytest.fixture(scope="module")
def runs(make_tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted reference run, and one run killed (SIGKILL) at each point of :data:`KILLS`."""
    out = tmp_path_factory.mktemp("runs")
    base = make_tiny(out)
    train(base.replace(run_name="reference"))
    jobs = []
    for name, (file, nth, when, changes) in KILLS.items():
        save_config(base.replace(run_name=name, **changes), out / f"{name}.yaml")
        jobs.append({"config": str(out / f"{name}.yaml"), "file": file, "nth": nth, "when": when})
    (out / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "lib"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(HERE / "kill_at.py"), str(out / "jobs.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and json.loads(done.stdout) == [signal.SIGKILL] * len(jobs), done.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", ["mid-write", "between-checkpoints", "last-epoch-save", "finishing", "early-stopped"])
def test_a_kill_at_any_moment_resumes_to_the_same_result(runs: Path, config, name: str) -> None:
    folder = runs / name
    killed = _strict_json(folder / "record.json")
    assert killed["status"] == "running"  # SIGKILL: nothing could say otherwise
    litter = list(folder.glob(".*.tmp"))
    assert bool(litter) == (name == "mid-write")  # the write the kill cut short
    last = folder / CHECKPOINT_LAST
    done = torch.load(last, weights_only=True)["epoch"] if last.is_file() else None
    early = name == "early-stopped"
    resumed = train(config(name, **(EARLY if early else {})).replace(resume=True))
    _assert_consistent(resumed)
    if early:  # lr 0: epoch 1 stays the best, and patience 1 stops the run after epoch 2 of 6, as before the kill
        assert (len(resumed.history), resumed.best["epoch"], resumed.record["stop_reason"]) == (2, 1, "early_stopping")
    else:
        _assert_same_result(resumed, load_run(runs / "reference"))
    assert resumed.record["sessions"] == 2 and resumed.record["start_time"] == killed["start_time"]
    log = (folder / "log.txt").read_text()
    assert f"resuming after epoch {done}/" in log if done else "resuming" not in log


def test_a_damaged_or_lost_checkpoint_is_refused_with_the_choices(runs: Path, config) -> None:
    folder = runs / "damaged"
    last, best = folder / CHECKPOINT_LAST, folder / CHECKPOINT_BEST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    damaged = config("damaged", resume=True)
    with pytest.raises(RunFolderError) as err:
        train(damaged)
    message = str(err.value)
    assert str(last) in message and "truncated" in message and "nothing was trained" in message
    assert f"{best} (epoch 1) is intact" in message and f"cp {best} {last}" in message
    record = _strict_json(folder / "record.json")  # the process that died no longer looks alive
    assert (record["status"], record["stop_reason"]) == ("failed", "killed")

    last.unlink()  # lost: resuming would start over at epoch 1 and overwrite the finished epochs
    before = _files(folder)
    with pytest.raises(RunFolderError) as err:
        train(damaged)
    message = str(err.value)
    assert f"{last} is missing, but the run has finished epochs ({CHECKPOINT_BEST}, history.csv)" in message
    assert f"cp {best} {last}" in message and "new run_name" in message
    assert _files(folder) == before

    shutil.copyfile(best, last)  # the choice the message offers: continue from the best epoch
    resumed = train(damaged)
    _assert_consistent(resumed)
    _assert_same_result(resumed, load_run(runs / "reference"))


def test_resuming_with_other_settings_is_refused_and_changes_nothing(runs: Path, config) -> None:
    shutil.copytree(runs / "reference", runs / "finished")
    folder, before = runs / "finished", _files(runs / "reference")
    with pytest.raises(RunFolderError) as err:
        train(config("finished", lr=0.1, epochs=4, resume=True))
    message = str(err.value)
    assert "lr: saved 0.002, given 0.1; epochs: saved 2, given 4" in message and "it finished" in message
    assert "new run_name" in message and "For more epochs, start a new run" in message
    assert _files(folder) == before
    same = train(config("finished", resume=True, progress=True))  # the same settings: loaded, not trained
    assert same.record == load_run(runs / "reference").record and _files(folder) == before
    assert same.record["pretrained_load"] is None  # no pretrained weights: nothing to report

    folder = runs / "not-started"  # killed before its first epoch: config.yaml only
    folder.mkdir()
    save_config(config("not-started"), folder / "config.yaml")
    before = _files(folder)
    with pytest.raises(RunFolderError, match="lr: saved 0.002, given 0.1.*continues with the settings it started"):
        train(config("not-started", lr=0.1, resume=True))
    assert _files(folder) == before


def test_a_folder_that_is_not_a_run_folder_is_never_written(tiny: TrainConfig) -> None:
    folder = Path(tiny.out_dir) / "tiny"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    for resume in (True, False):
        with pytest.raises(RunFolderError, match=r"is not a run folder: it holds notes.txt but no config.yaml.*"
                                                 r"nothing was written into it. Choose another run_name"):
            train(tiny.replace(resume=resume))
        assert _files(folder) == {"notes.txt": b"mine"}


def test_unusable_places_are_refused_with_what_to_do(tiny: TrainConfig, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunFolderError, match="cannot create the run folder .* out_dir must be a folder"):
        train(tiny.replace(out_dir=str(tmp_path / "a-file")))
    folder = Path(tiny.out_dir) / "tiny"
    folder.mkdir(parents=True)
    save_config(tiny, folder / "config.yaml")
    (folder / "record.json").write_text('{"status": "runn')
    with pytest.raises(RunFolderError, match=r"record.json cannot be read as JSON .* repair it, or train"):
        train(tiny.replace(resume=True))


def test_a_non_finite_selection_loss_is_never_selected(tiny: TrainConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from convnext_report import training

    real, calls = training.evaluate, []

    def nan_in_epoch_2(*args, **kwargs) -> EvalResult:  # one evaluation per epoch: the held-out images
        result = real(*args, **kwargs)
        calls.append(result)
        if len(calls) == 2:
            result.loss = math.nan
        return result

    monkeypatch.setattr(training, "evaluate", nan_in_epoch_2)
    with pytest.raises(NonFiniteLossError, match=r"selection loss is nan after epoch 2 .*grad_clip.*"
                                                 r"checkpoint_last.pt \(epoch 1, the last good epoch\)"):
        train(tiny)
    folder = Path(tiny.out_dir) / "tiny"
    record = _strict_json(folder / "record.json")
    assert (record["status"], record["stop_reason"], record["best_epoch"], record["epochs_run"]) == \
        ("failed", "non_finite_loss", 1, 1)
    assert pd.read_csv(folder / "history.csv")["epoch"].tolist() == [1]
    assert torch.load(folder / CHECKPOINT_LAST, weights_only=True)["epoch"] == 1


def test_json_files_are_strict_json(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"nan": math.nan, "inf": np.float32("inf"), "list": [np.nan, 1.5],
                                            "int": np.int64(3), "path": tmp_path})
    assert _strict_json(tmp_path / "a.json") == {"nan": None, "inf": None, "list": [None, 1.5], "int": 3,
                                                 "path": str(tmp_path)}
    result = EvalResult(labels=np.array([0, 1]), predictions=np.array([0, 0]), top5_predictions=np.array([[0], [0]]),
                        confidence=np.array([0.5, 0.5]), loss=math.nan, class_names=["a", "b"])
    result.save(tmp_path)
    assert _strict_json(tmp_path / "eval.json")["loss"] is None and math.isnan(EvalResult.load(tmp_path).loss)


def test_a_pretrained_load_says_what_it_left_out(tiny: TrainConfig, tmp_path: Path) -> None:
    source = tmp_path / "source.pt"
    torch.save(build_model("convnextv2_atto", 200, stem_stride=4).state_dict(), source)
    run = train(tiny.replace(pretrained=str(source), epochs=1))
    load = run.record["pretrained_load"]
    assert load["source"] == str(source) and sorted(load["reinitialised"]) == ["head.fc.bias", "head.fc.weight"]
    assert load["skipped"] == ["head.fc.weight", "head.fc.bias"] and load["loaded"] > 100
    assert len(load["resampled"]) == 1
    assert "stem.0.weight: stem kernel resampled (4, 4) -> (2, 2)" in load["resampled"][0]
    log = (run.path / "log.txt").read_text()
    assert f"pretrained {source}" in log and "left at their initialisation: head.fc.weight, head.fc.bias" in log
