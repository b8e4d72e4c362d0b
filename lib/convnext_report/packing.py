"""Packed sweeps: train many runs at once, each in its own process (:func:`train_many`), and how many
at once (:func:`choose_workers`, from :mod:`convnext_report.workers`).

One run leaves most of a large GPU idle, so ``train_many`` starts up to K ``python -m convnext_report.worker
<yaml> --parent-pid <pid>`` processes (CUDA state, compile caches and crashes stay per run), each with
``max(1, C // K)`` CPU threads (C: CPUs this process may use). A run's results do not depend on its
neighbours: same seed, same history (bit-identical on CPU at the same thread count; tests/test_packing.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .config import TrainConfig, save_config
from .distributed import resolve_device
from .interrupts import sigterm_raises
from .runfolder import Run, load_run, read_json
from .workers import choose_workers, threads_per_worker

__all__ = ["PackedRunsError", "RunFailure", "choose_workers", "train_many"]

_TAIL_LINES = 25
_GRACE_SECONDS = 10.0  # after SIGTERM, before SIGKILL
_POLL_SECONDS = 0.2
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                  "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


@dataclass(frozen=True)
class RunFailure:
    """One run of :func:`train_many` that did not finish."""

    label: str  #: the run_name
    path: Path  #: its run folder
    log: Path  #: the child's stdout and stderr
    returncode: int | None
    tail: str  #: the last lines of this attempt's output

    def describe(self) -> str:
        tail = "\n".join("    | " + line for line in self.tail.splitlines())
        return f"- {self.label}: exit {self.returncode}; run folder {self.path}; log {self.log}\n{tail}"


class PackedRunsError(RuntimeError):
    """Some runs of :func:`train_many` failed; ``runs`` holds the others (``None`` where one failed)."""

    def __init__(self, failures: list[RunFailure], runs: list[Run | None]):
        self.failures, self.runs = failures, runs
        super().__init__(
            f"{len(failures)} of {len(runs)} runs failed (the others finished; fix the cause and call "
            "train_many again with resume=True to run only what is missing):\n"
            + "\n".join(f.describe() for f in failures))


@dataclass
class _Job:
    index: int
    config: TrainConfig
    path: Path  #: run folder
    log: Path
    spec: Path  #: the config the child reads
    proc: subprocess.Popen | None = None
    offset: int = 0  #: where this attempt's output starts in ``log``
    started: float = field(default_factory=time.perf_counter)

    def tail(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-_TAIL_LINES:])


def train_many(configs: Sequence[TrainConfig], *, workers: int | None = None, log_dir: Path | None = None,
               may_start: Callable[[int], bool] | None = None,
               on_finished: Callable[[int, Run], None] | None = None) -> list[Run | None]:
    """Train every config, at most ``workers`` at once (default :func:`choose_workers`), each in its own
    process; the :class:`Run` of each, in the order of ``configs``.

    Every config needs a ``run_name`` (and its ``out_dir``); with ``resume=True`` a finished run is loaded
    without starting a process and an unfinished one continues. ``may_start(i)`` is asked just before run
    ``i`` would start (False: it is not started, and its place holds None); ``on_finished(i, run)`` is called
    here as each run finishes. Children log to ``<log_dir or out_dir>/<run_name>.log``. A failed run does
    not stop the others: :class:`PackedRunsError` at the end names each failure with its folder and output.
    Ctrl-C or SIGTERM here sends SIGTERM to every child (each marks its run failed, "terminated"; SIGKILL
    after 10 s), and the children get SIGTERM if this process dies.
    """
    configs = list(configs)
    jobs = _plan(configs, Path(log_dir) if log_dir is not None else None)
    runs: list[Run | None] = [None] * len(jobs)
    todo: deque[_Job] = deque()
    for job in jobs:
        if job.config.resume and read_json(job.path / "record.json").get("status") == "finished":
            runs[job.index] = load_run(job.path)
            print(f"[train_many] {job.path.name}: already finished, top-1 {_top1(runs[job.index])}", flush=True)
            if on_finished is not None:
                on_finished(job.index, runs[job.index])
        else:
            todo.append(job)
    if not todo:
        return runs
    device = next((d for d in (resolve_device(j.config.device) for j in todo) if d.type == "cuda"), torch.device("cpu"))
    k = choose_workers([j.config for j in todo], device, workers=workers)
    threads = threads_per_worker(k)
    print(f"[train_many] {len(todo)} runs on {device}, {k} at a time, {threads} CPU thread(s) each; "
          f"logs: {sorted({str(j.log.parent) for j in todo})}", flush=True)
    failures: list[RunFailure] = []
    running: list[_Job] = []
    done = len(jobs) - len(todo)
    with sigterm_raises():
        try:
            while todo or running:
                while todo and len(running) < k:
                    job = todo.popleft()
                    if may_start is None or may_start(job.index):
                        running.append(job)
                        _start(job, threads)
                time.sleep(_POLL_SECONDS if running else 0)
                for job in [j for j in running if j.proc is not None and j.proc.poll() is not None]:
                    running.remove(job)
                    done += 1
                    runs[job.index] = _collect(job, failures, f"{done}/{len(jobs)}")
                    if runs[job.index] is not None and on_finished is not None:
                        on_finished(job.index, runs[job.index])
        except BaseException:
            _stop(running)
            raise
    if failures:
        order = {j.path: j.index for j in jobs}
        raise PackedRunsError(sorted(failures, key=lambda f: order[f.path]), runs)
    return runs


def _plan(configs: list[TrainConfig], log_dir: Path | None) -> list[_Job]:
    """One job per config, or a ValueError listing every problem before anything starts."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("train_many runs its own processes: call it once, not under torchrun")
    problems, jobs, seen = [], [], {}
    for i, c in enumerate(configs):
        if not c.run_name:
            problems.append(f"configs[{i}] has no run_name: train_many needs one per run (its folder name)")
            continue
        path = Path(c.out_dir) / c.run_name
        folder = log_dir if log_dir is not None else Path(c.out_dir)
        job = _Job(i, c, path, folder / f"{c.run_name}.log", folder / f"{c.run_name}.yaml")
        for key in (path.resolve(), job.log.resolve()):
            if key in seen:
                problems.append(f"configs[{seen[key]}] and configs[{i}] share {key}: give them different run_names")
            seen[key] = i
        if not c.resume and any((path / name).is_file() for name in ("config.yaml", "record.json")):
            problems.append(f"run folder {path} already holds a run: pass resume=True to continue or load it, "
                            "or choose a new run_name")
        jobs.append(job)
    if problems:
        raise ValueError("train_many cannot start:\n" + "\n".join(f"- {p}" for p in problems))
    return jobs


def _child_env(threads: int) -> dict[str, str]:
    """This environment without torchrun's variables, with thread counts, unbuffered output and this
    package first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    lib = str(Path(__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != lib]
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([lib, *paths]))
    return env


def _start(job: _Job, threads: int) -> None:
    """Write the job's config and start its child, output appended to its log."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    save_config(job.config.replace(progress=False), job.spec)
    command = [sys.executable, "-m", "convnext_report.worker", str(job.spec), "--parent-pid", str(os.getpid())]
    with job.log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        out.flush()
        job.offset = out.tell()
        # own session: a terminal's Ctrl-C reaches only this process, which then stops each child's group
        job.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_child_env(threads), start_new_session=True)
    job.started = time.perf_counter()


def _collect(job: _Job, failures: list[RunFailure], count: str) -> Run | None:
    """The finished job's Run (and one progress line), or None after recording its failure."""
    seconds = time.perf_counter() - job.started
    rc = job.proc.returncode if job.proc is not None else None
    run = None
    if rc == 0:
        with contextlib.suppress(FileNotFoundError, ValueError):
            run = load_run(job.path)
    if run is not None and run.record.get("status") == "finished":
        job.spec.unlink(missing_ok=True)
        print(f"[train_many] {count} {job.path.name}: {seconds:.1f} s, top-1 {_top1(run)}", flush=True)
        return run
    tail = job.tail() + ("" if rc else "\n(exit 0, but the run folder does not hold a finished run)")
    failures.append(RunFailure(job.path.name, job.path, job.log, rc, tail.strip("\n")))
    print(f"[train_many] {count} {job.path.name}: FAILED (exit {rc}) after {seconds:.1f} s; log {job.log}; "
          f"rerun alone: {sys.executable} -m convnext_report train --config {job.spec}", flush=True)
    return None


def _top1(run: Run | None) -> str:
    top1 = run.record.get("final_top1") if run is not None else None
    return f"{top1:.4f}" if isinstance(top1, (int, float)) else "n/a"


def _stop(running: list[_Job]) -> None:
    """SIGTERM to each child's process group (a child marks its run failed, "terminated"), SIGKILL after
    ``_GRACE_SECONDS``; returns when every child has exited."""
    procs = [j.proc for j in running if j.proc is not None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        deadline = time.monotonic() + _GRACE_SECONDS
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        procs = [p for p in procs if p.poll() is None]
        if not procs:
            return
