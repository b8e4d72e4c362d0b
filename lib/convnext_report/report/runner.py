"""A chapter's runs: from the result store, else trained and stored as each finishes (ARCHITECTURE.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    config = config.replace(out_dir=str(runs_folder(chapter, smoke)), run_name=store.entry_name(label, config.seed, key),
                            resume=True)
    p = Pending(chapter, label, key, config, smoke, store.find(key, smoke=smoke))
    if p.entry is not None and need_weights and (p.folder / CHECKPOINT_BEST).is_file():
        return Obtained(load_run(p.folder), key, "store", p.entry)
    if p.entry is not None and not need_weights:
        return Obtained(store.load(p.entry, p.config), key, "store", p.entry)
    return p


def train_missing(pending: Sequence[Pending], *, workers: int | None = None,
                  may_start: Callable[[Pending], bool] | None = None,
                  on_stored: Callable[[Pending, Obtained], None] | None = None) -> tuple[list[Obtained], list[Pending]]:
    """Train and store ``pending``, up to ``workers`` at once (``packing``); the runs trained and those ``may_start``
    kept from starting. A diverged run is kept; another failure is raised once the others finished."""
    if not pending:
        return [], []
    started: dict[int, float] = {}
    done: dict[int, Obtained] = {}

    def starts(i: int) -> bool:
        if may_start is not None and not may_start(pending[i]):
            return False
        _check_weights(pending[i])
        started[i] = time.monotonic()
        return True

    def finished(i: int, run: Run) -> None:
        p = pending[i]
        entry = store.put(p.folder, key=p.key, chapter=p.chapter, label=p.label, seed=p.config.seed, smoke=p.smoke,
                          replace=p.entry is not None)
        done[i] = Obtained(run, p.key, "trained", entry, time.monotonic() - started.get(i, time.monotonic()))
        if on_stored is not None:
            on_stored(p, done[i])

    if choose_workers([p.config for p in pending], pending[0].config.device, workers=workers) == 1:
        for i, p in enumerate(pending):
            if starts(i):
                try:
                    run = train(p.config)
                except NonFiniteLossError as err:
                    run = _diverged(p, err)
                finished(i, run)
    else:
        try:
            train_many([p.config for p in pending], workers=workers, may_start=starts, on_finished=finished)
        except PackedRunsError as err:
            failed = {f.path for f in err.failures}
            for i in [i for i, p in enumerate(pending) if p.folder in failed]:
                finished(i, _diverged(pending[i], err))
    return [done[i] for i in sorted(done)], [p for i, p in enumerate(pending) if i not in started and i not in done]


def _check_weights(p: Pending) -> None:
    value = p.config.pretrained
    if value and Path(value).suffix in store.WEIGHT_SUFFIXES and not Path(value).is_file():
        raise FileNotFoundError(
            f"{p.chapter}: run {p.label!r} (seed {p.config.seed}) is not in the result store and must be trained, "
            f"but its pretrained weights {value} are not on this machine (the store keeps no weights). Train "
            "chapter 3's run here first: `tools/train_missing --chapters 03_source_backbone 04_baseline 05_improved` "
            "(or execute chapter 03 with `-p retrain_for_weights True`).")


def _diverged(p: Pending, err: Exception) -> Run:
    """Run ``p`` if it stopped on a non-finite loss (a result, up to its last finite epoch), else ``err`` raised."""
    if read_json(p.folder / "record.json").get("stop_reason") != "non_finite_loss":
        raise err
    print(f"{p.label} (seed {p.config.seed}) diverged: reported up to its last finite epoch (see its log.txt)")
    return load_run(p.folder)
