"""Packed sweeps: the worker-count rule (pure, fake memory numbers), and ``train_many`` on CPU with real
data: the same results as one run at a time, failures reported by name, no children left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from convnext_report import workers as workers_module
from convnext_report.config import TrainConfig
from convnext_report.data import get_dataset_spec
from convnext_report.packing import PackedRunsError, choose_workers, train_many
from convnext_report.training import train
from convnext_report.workers import (
    MAX_WORKERS, estimate_run_bytes, threads_per_worker, workers_for_memory,
)

GiB = 1 << 30
LIB = Path(__file__).resolve().parents[1] / "lib"
TIMING_KEYS = ("seconds", "images_per_second")  # the only history columns that may differ


# ------------------------------------------------------------------------------- the worker-count rule

def test_threads_per_worker_splits_the_cores() -> None:
    assert threads_per_worker(1, cpus=2) == 2 and threads_per_worker(2, cpus=2) == 1
    assert threads_per_worker(3, cpus=2) == 1 and threads_per_worker(4, cpus=16) == 4
    assert threads_per_worker(3, cpus=16) == 5


def test_workers_for_memory_fits_runs_and_respects_the_caps() -> None:
    assert workers_for_memory(10 * GiB, 3 * GiB, runs=20, cpus=16) == 3  # 9 GiB usable / 3 GiB
    assert workers_for_memory(130 * GiB, 4 * GiB, runs=20, cpus=16) == MAX_WORKERS == 8
    assert workers_for_memory(130 * GiB, 4 * GiB, runs=3, cpus=16) == 3  # no more than there are runs
    assert workers_for_memory(130 * GiB, 4 * GiB, runs=20, cpus=2) == 2  # a core per process
    assert workers_for_memory(1 * GiB, 4 * GiB, runs=20, cpus=16) == 1  # never 0: one at a time


def test_run_estimate_grows_with_batch_model_and_resolution() -> None:
    base = TrainConfig(dataset="tiny-imagenet-32", model="convnextv2_atto", stem_stride=2, batch_size=256)
    atto = estimate_run_bytes(base)
    assert 2 * GiB < atto < 8 * GiB  # context 1.5 GiB + 0.3 GiB of images + activations of 256 images
    assert estimate_run_bytes(base.replace(batch_size=512)) > atto
    assert estimate_run_bytes(base.replace(stem_stride=1)) > estimate_run_bytes(base.replace(batch_size=512))
    assert estimate_run_bytes(base.replace(model="convnextv2_nano")) > atto
    assert estimate_run_bytes(base.replace(optimizer="sgd")) < atto  # one optimiser state, not two


def test_run_estimate_takes_split_sizes_from_the_registry() -> None:
    full = TrainConfig(dataset="cifar100", stem_stride=2, batch_size=256)
    spec = get_dataset_spec("cifar100")  # 500 + 100 images per class
    assert estimate_run_bytes(full) == estimate_run_bytes(
        full.replace(train_per_class=spec.per_class["train"], test_per_class=spec.per_class["test"]))


def test_choose_workers_on_cpu_is_one_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [TrainConfig(run_name=f"r{i}") for i in range(3)]
    monkeypatch.setenv("CONVNEXT_REPORT_WORKERS", "2")  # no longer read: the argument is the one way
    assert choose_workers(configs, "cpu") == 1
    assert choose_workers(configs, "cpu", workers=2) == 2
    assert choose_workers(configs, "cpu", workers=10) == 3  # no more than there are runs
    with pytest.raises(ValueError, match="workers must be >= 1"):
        choose_workers(configs, "cpu", workers=0)


def test_choose_workers_on_cuda_uses_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "usable_cpus", lambda: 16)
    configs = [TrainConfig(run_name=f"r{i}", batch_size=256) for i in range(20)]
    need = estimate_run_bytes(configs[0])
    for free, expected in ((100 * GiB, 8), (int(3.5 * need / 0.9), 3), (need // 2, 1)):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 141 * GiB))
        assert choose_workers(configs, torch.device("cuda")) == expected, free
    # the largest run decides
    big = configs[:4] + [configs[0].replace(run_name="big", stem_stride=1)]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (12 * need, 141 * GiB))
    assert choose_workers(big, torch.device("cuda")) == (int(0.9 * 12 * need) // estimate_run_bytes(big[-1]))


# --------------------------------------------------------------------------------------- whole runs

def _tiny(data_root: Path, out: Path, name: str, **changes) -> TrainConfig:
    """cifar10, 4 classes x 16 images, 8 test images per class, 2 epochs of 2 steps (as test_runner's)."""
    return TrainConfig(
        dataset="cifar10", data_dir=str(data_root), max_classes=4, train_per_class=16, test_per_class=8,
        model="convnextv2_atto", stem_stride=2, image_size=32, batch_size=32, epochs=2, lr=2e-3,
        warmup_epochs=0.5, out_dir=str(out), run_name=name, progress=False, device="cpu",
    ).replace(**changes)


@pytest.mark.slow
def test_packed_runs_match_sequential_runs(data_root: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    configs = [_tiny(data_root, tmp_path / "packed", "a", seed=0),
               _tiny(data_root, tmp_path / "packed", "b", seed=1, lr=1e-3)]
    runs = train_many(configs, workers=2, log_dir=tmp_path / "logs")
    out = capsys.readouterr().out
    assert [r.path.name for r in runs] == ["a", "b"]
    assert "2 at a time" in out and "a: " in out and "b: " in out and "top-1" in out
    assert (tmp_path / "logs" / "a.log").is_file() and not (tmp_path / "logs" / "a.yaml").exists()

    threads = threads_per_worker(2)
    assert all(r.record["torch_threads"] == threads for r in runs)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # CPU results depend on the thread count: compare like with like
    try:
        alone = [train(c.replace(out_dir=str(tmp_path / "alone"))) for c in configs]
    finally:
        torch.set_num_threads(before)
    for packed, single in zip(runs, alone):
        pd.testing.assert_frame_equal(packed.history_df.drop(columns=list(TIMING_KEYS)),
                                      single.history_df.drop(columns=list(TIMING_KEYS)), check_exact=True)
        assert (packed.eval.top1, packed.eval.loss) == (single.eval.top1, single.eval.loss)
        np.testing.assert_array_equal(packed.eval.predictions, single.eval.predictions)
        np.testing.assert_array_equal(packed.eval.confidence, single.eval.confidence)

    # resume=True: finished runs are loaded without starting a process
    t0 = time.perf_counter()
    again = train_many([c.replace(resume=True) for c in configs], workers=2)
    assert [(r.path, r.record["end_time"]) for r in again] == [(r.path, r.record["end_time"]) for r in runs]
    assert time.perf_counter() - t0 < 5
    assert capsys.readouterr().out.count("already finished") == 2


@pytest.mark.slow
def test_a_failed_run_is_reported_by_name_and_the_others_finish(data_root: Path, tmp_path: Path) -> None:
    good = _tiny(data_root, tmp_path / "runs", "good", epochs=1)
    bad = good.replace(run_name="broken", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(PackedRunsError) as caught:
        train_many([bad, good], workers=2)
    err = caught.value
    assert [f.label for f in err.failures] == ["broken"]
    message = str(err)
    assert "1 of 2 runs failed" in message and "broken" in message and str(tmp_path / "runs" / "broken") in message
    assert "nowhere" in message  # the tail of the child's output says what went wrong
    assert err.failures[0].log == tmp_path / "runs" / "broken.log" and err.failures[0].returncode != 0
    assert err.runs[0] is None and err.runs[1].record["status"] == "finished"
    assert (tmp_path / "runs" / "broken.yaml").is_file()  # kept so the failed run can be rerun alone


def test_bad_sweeps_are_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "record.json").write_text("{}")
    configs = [TrainConfig(out_dir=str(tmp_path)), TrainConfig(out_dir=str(tmp_path), run_name="x"),
               TrainConfig(out_dir=str(tmp_path), run_name="x"), TrainConfig(out_dir=str(tmp_path), run_name="done")]
    with pytest.raises(ValueError) as caught:
        train_many(configs)
    message = str(caught.value)
    assert "configs[0] has no run_name" in message and "configs[1] and configs[2] share" in message
    assert "done already holds a run: pass resume=True" in message
    assert list(tmp_path.iterdir()) == [tmp_path / "done"]


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_the_parent_stops_every_child(sig: signal.Signals, data_root: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from convnext_report.config import TrainConfig
        from convnext_report.packing import train_many
        base = TrainConfig(dataset="cifar10", data_dir={str(data_root)!r}, max_classes=4, train_per_class=16,
                           test_per_class=8, batch_size=32, epochs=10_000, out_dir={str(tmp_path)!r},
                           progress=False, device="cpu")
        train_many([base.replace(run_name="one"), base.replace(run_name="two", seed=1)], workers=2)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        # both children are training: each has written its first epoch's history
        while not all((tmp_path / n / "history.csv").is_file() for n in ("one", "two")):
            assert parent.poll() is None and time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.2)
        children = _children(parent.pid)
        assert len(children) == 2
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children), f"children left after {sig.name}"
    finally:  # whatever happened, leave nothing running
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for child in filter(_alive, children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    # the parent's SIGTERM, or the kernel's (PR_SET_PDEATHSIG) when the parent was killed: each run says so
    for name in ("one", "two"):
        record = json.loads((tmp_path / name / "record.json").read_text())
        assert (record["status"], record["stop_reason"]) == ("failed", "terminated"), name
