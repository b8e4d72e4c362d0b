"""A chapter's runs: from the result store, else trained here and stored as each finishes.

:func:`prepare` looks a run up by its key; :func:`train_missing` trains the others into
``<runs>/<chapter>[-smoke]/<label>-s<seed>-<key[:8]>`` (a killed one resumes), one by one in this process
or, on a GPU, several at once (``packing.choose_workers``; each in its own process). The tools also
decide when a run may start (``may_start``: a deadline) and act on each stored run (``on_stored``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import NonFiniteLossError
from ..packing import PackedRunsError, choose_workers, train_many
from ..runfolder import CHECKPOINT_BEST, Run, load_run, read_json
from ..training import train
from . import store

__all__ = ["Obtained", "Pending", "prepare", "runs_folder", "train_missing"]


@dataclass
class Obtained:
    """A chapter's run and where it came from: ``"store"`` or ``"trained"`` (here, in ``seconds``)."""

    run: Run
    key: str
    source: str
    entry: store.Entry | None
    seconds: float | None = None


@dataclass
class Pending:
    """A run to train (its config names its run folder) and its stale entry, if any."""

    chapter: str
    label: str
    key: str
    config: Any
    smoke: bool
    entry: store.Entry | None = None

    @property
    def folder(self) -> Path:
        return Path(self.config.out_dir) / self.config.run_name


def runs_folder(chapter: str, smoke: bool) -> Path:
    """``<runs>/<chapter>[-smoke]``: where a chapter's run folders go."""
    return store.runs_dir() / (chapter + ("-smoke" if smoke else ""))


def prepare(chapter: str, label: str, config: Any, *, smoke: bool, need_weights: bool = False) -> Obtained | Pending:
    """The stored run ``config`` describes, or what to train. ``need_weights`` (chapter 3's backbone): a
    stored run without its checkpoint on this machine is trained again (same key: its entry is replaced)."""
    key = store.run_key(config)
    name = store.entry_name(label, config.seed, key)
    config = config.replace(out_dir=str(runs_folder(chapter, smoke)), run_name=name, resume=True)
    entry, folder = store.find(key, smoke=smoke), Path(config.out_dir) / config.run_name
    if entry is not None and need_weights and (folder / CHECKPOINT_BEST).is_file():
        return Obtained(load_run(folder), key, "store", entry)
    if entry is not None and not need_weights:
        return Obtained(store.load(entry, config), key, "store", entry)
    return Pending(chapter, label, key, config, smoke, entry)


def train_missing(pending: Sequence[Pending], *, workers: int | None = None,
                  may_start: Callable[[Pending], bool] | None = None,
                  on_stored: Callable[[Pending, Obtained], None] | None = None) -> tuple[list[Obtained], list[Pending]]:
    """Train and store ``pending``, up to ``workers`` at once (default ``choose_workers``); the runs trained
    and those ``may_start`` kept from starting. A run that diverged is kept up to its last finite epoch;
    another failure is raised once the runs already started have finished."""
    if not pending:
        return [], []
    k = choose_workers([p.config for p in pending], pending[0].config.device, workers=workers)
    lock, done = threading.Lock(), {}

    def one(index: int, p: Pending) -> None:
        with lock:
            if may_start is not None and not may_start(p):
                return
        _check_weights(p)
        start = time.monotonic()
        run = _train(p, apart=k > 1)
        entry = store.put(p.folder, key=p.key, chapter=p.chapter, label=p.label, seed=p.config.seed, smoke=p.smoke,
                          replace=p.entry is not None)
        with lock:
            done[index] = Obtained(run, p.key, "trained", entry, time.monotonic() - start)
            if on_stored is not None:
                on_stored(p, done[index])

    if k == 1:
        for index, p in enumerate(pending):
            one(index, p)
    else:
        with ThreadPoolExecutor(k) as pool:  # a thread waits for each run's process
            futures = [pool.submit(one, i, p) for i, p in enumerate(pending)]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                pool.shutdown(cancel_futures=True)  # start nothing more; the running ones finish
                raise
    return [done[i] for i in sorted(done)], [p for i, p in enumerate(pending) if i not in done]


def _check_weights(p: Pending) -> None:
    value = p.config.pretrained
    if value and Path(value).suffix in store.WEIGHT_SUFFIXES and not Path(value).is_file():
        raise FileNotFoundError(
            f"{p.chapter}: run {p.label!r} (seed {p.config.seed}) is not in the result store and must be trained, "
            f"but its pretrained weights {value} are not on this machine (the store keeps no weights). Train "
            "chapter 3's run here first: `tools/train_missing --chapters 03_source_backbone 04_baseline 05_improved` "
            "(or execute chapter 03 with `-p retrain_for_weights True`).")


def _train(p: Pending, *, apart: bool) -> Run:
    """Train here, or (``apart``) in a process of its own; a run that diverged keeps its finite epochs."""
    try:
        return train_many([p.config], workers=1)[0] if apart else train(p.config)
    except (NonFiniteLossError, PackedRunsError) as err:
        if read_json(p.folder / "record.json").get("stop_reason") != "non_finite_loss":
            raise
        print(f"{p.label} (seed {p.config.seed}) diverged and is reported up to its last finite epoch: {err}")
        return load_run(p.folder)
