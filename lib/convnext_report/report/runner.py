"""A chapter's runs: from the result store when they are there, else trained (if allowed and in time).

:func:`prepare` looks a run up by its key (:mod:`.keys`) in the store's layers (:mod:`.paths`); a
stored run is loaded (and, when publishing, copied into the committed store). :func:`train_missing`
trains the rest into ``<runs>/<chapter>[-smoke]/<label>-s<seed>-<key[:8]>`` (resuming a killed one),
several at once on a GPU (:func:`convnext_report.packing.train_many`) or one by one in this process,
and stores each as soon as it finishes, unless training is switched off (:class:`MissingRunError`)
or the plan's estimate says it cannot finish before the deadline (:class:`RunSkipped`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..distributed import resolve_device
from ..engine import NonFiniteLossError
from ..packing import PackedRunsError, choose_workers, train_many
from ..runfolder import CHECKPOINT_BEST, Run, load_run, read_json
from ..training import train
from . import store
from .estimate import COMPILE_WARMUP_S, compile_shape, run_cost
from .keys import WEIGHT_SUFFIXES, entry_name, run_key
from .paths import committed_store_dir, store_layers
from .switches import DEADLINE_ENV, TRAIN_ENV, publishing, seconds_left, training_allowed

__all__ = ["DeadlineError", "MissingRunError", "Obtained", "Pending", "RunSkipped", "obtain", "prepare",
           "train_missing"]


class MissingRunError(RuntimeError):
    """A run is not in the store and training is switched off."""


class RunSkipped(RuntimeError):
    """A run was not started: its estimated time ends after the deadline."""

    def __init__(self, label: str, seed: int, key: str, seconds: float, left: float) -> None:
        self.label, self.seed, self.key, self.seconds, self.left = label, seed, key, seconds, left
        super().__init__(f"{label} (seed {seed}, key {key[:8]}): needs about {seconds:.0f} s, {max(left, 0):.0f} s left")


class DeadlineError(RuntimeError):
    """Runs were skipped because of the deadline (the finished ones are stored)."""

    def __init__(self, chapter: str, skipped: list[RunSkipped]) -> None:
        self.skipped = skipped
        lines = "\n".join(f"  - {s}" for s in skipped)
        super().__init__(
            f"{chapter}: {len(skipped)} run(s) not started because ${DEADLINE_ENV} comes first:\n{lines}\n"
            "Every finished run is in the result store; execute the chapter again (a later window) to train "
            "the rest: stored runs are not trained again.")


@dataclass
class Obtained:
    """A chapter's run and where it came from."""

    run: Run
    key: str
    source: str  #: "store" (found) or "trained" (here, now)
    entry: store.Entry | None


@dataclass
class Pending:
    """A run that must be trained: its label, key, config (with its run folder) and stale entry, if any."""

    label: str
    key: str
    config: Any
    entry: store.Entry | None

    @property
    def folder(self) -> Path:
        return Path(self.config.out_dir) / self.config.run_name


def _missing_message(chapter: str, label: str, seed: int, key: str, smoke: bool) -> str:
    where = ", ".join(str(p) for p in store_layers())
    return (f"{chapter}: run {label!r} (seed {seed}, key {key[:8]}, {'smoke' if smoke else 'full'} configuration) is "
            f"not in the result store ({where}) and training is switched off (${TRAIN_ENV}=0). Get it where "
            "a GPU is: `tools/device_run --data <data folder> --chapters "
            f"{chapter}` there, then `tools/device_unpack <its output folder>` here; or unset {TRAIN_ENV} "
            "to train it on this machine.")


def _check_weights(config: Any, chapter: str) -> None:
    value = config.pretrained
    if value and Path(value).suffix in WEIGHT_SUFFIXES and not Path(value).is_file():
        raise FileNotFoundError(
            f"{chapter}: a run is missing from the store and must be trained, but its pretrained weights "
            f"{value} are not on this machine (the store keeps no weights). Execute chapter 03 first in the "
            "same session (tools/device_run runs 03, 04 and 05 in one command).")


#: model shapes this process has compiled (their warm-up is paid once)
_COMPILED: set[tuple] = set()


def _estimate(config: Any) -> float:
    """The plan's estimate of a run, with the compile warm-up if this process has not compiled its shape."""
    shape = compile_shape(config)
    return run_cost(config).seconds + (COMPILE_WARMUP_S if shape is not None and shape not in _COMPILED else 0.0)


def prepare(chapter: str, label: str, config: Any, *, smoke: bool, need_weights: bool = False) -> Obtained | Pending:
    """The stored run ``config`` describes, or what to train (see the module docstring).

    ``need_weights``: the chapter needs the run's weights on this machine (chapter 3's backbone): a
    stored run without a local checkpoint is trained again when training is allowed, and its new
    entry replaces the old one in the store being written (same key: the backbone keeps its identity).
    """
    key = run_key(config)
    config = config.replace(run_name=entry_name(label, config.seed, key), resume=True)
    folder = Path(config.out_dir) / config.run_name
    entry = store.find(key, smoke=smoke)
    if entry is not None and publishing() and not entry.path.resolve().is_relative_to(committed_store_dir().resolve()):
        entry = store.publish(entry)  # a page published from this run needs it in the committed store
    if entry is not None and need_weights and (folder / CHECKPOINT_BEST).is_file():
        return Obtained(load_run(folder), key, "store", entry)
    if entry is not None and not (need_weights and training_allowed()):
        return Obtained(store.load(entry, config), key, "store", entry)
    if not training_allowed():
        raise MissingRunError(_missing_message(chapter, label, config.seed, key, smoke))
    return Pending(label, key, config, entry)


def train_missing(chapter: str, pending: Sequence[Pending], *, smoke: bool,
                  workers: int | None = None) -> tuple[list[Obtained], list[RunSkipped]]:
    """Train ``pending`` (up to ``workers`` at once; default :func:`convnext_report.packing.choose_workers`)
    and store each; the runs that fit before the deadline, in order, and those skipped for it."""
    if not pending:
        return [], []
    device = resolve_device(pending[0].config.device)
    k = choose_workers([p.config for p in pending], device, workers=workers)
    todo, skipped = _fit_deadline(pending, k)
    for p in todo:
        _check_weights(p.config, chapter)
        _COMPILED.add(compile_shape(p.config))
    runs = _train(todo, k)
    obtained = [Obtained(run, p.key, "trained", store.put(p.folder, key=p.key, chapter=chapter, label=p.label,
                                                           seed=p.config.seed, smoke=smoke,
                                                           replace=p.entry is not None))
                for p, run in zip(todo, runs)]
    return obtained, skipped


def _fit_deadline(pending: Sequence[Pending], workers: int) -> tuple[list[Pending], list[RunSkipped]]:
    """The runs whose estimate (shared by ``workers`` at a time) ends before the deadline, in order."""
    left = seconds_left()
    if left is None:
        return list(pending), []
    todo, skipped, used = [], [], 0.0
    for p in pending:
        seconds = _estimate(p.config)
        if used + seconds / workers > left:
            skipped.append(RunSkipped(p.label, p.config.seed, p.key, seconds, left - used))
        else:
            todo.append(p)
            used += seconds / workers
    return todo, skipped


def _train(todo: Sequence[Pending], workers: int) -> list[Run]:
    """One by one here (``workers == 1``), else in packed processes; a run that diverged is kept up to
    its last finite epoch (and says so), any other failure is raised after the others finished."""
    if workers <= 1 or len(todo) == 1:
        return [_train_here(p) for p in todo]
    try:
        return train_many([p.config for p in todo], workers=workers)
    except PackedRunsError as err:
        diverged = {f.path for f in err.failures
                    if read_json(f.path / "record.json").get("stop_reason") == "non_finite_loss"}
        if diverged != {f.path for f in err.failures}:
            raise
        for path in sorted(diverged):
            print(f"{path.name} diverged and is reported up to its last finite epoch (see {path.name}/log.txt)")
        return [run if run is not None else load_run(p.folder) for p, run in zip(todo, err.runs)]


def _train_here(p: Pending) -> Run:
    try:
        return train(p.config)
    except NonFiniteLossError as err:  # diverged: keep the epochs before it, say so, go on
        print(f"{p.label} (seed {p.config.seed}) diverged and is reported up to its last finite epoch: {err}")
        return load_run(p.folder)


def obtain(chapter: str, label: str, config: Any, *, smoke: bool, need_weights: bool = False) -> Obtained:
    """One run: :func:`prepare`, then :func:`train_missing` if it is not stored."""
    got = prepare(chapter, label, config, smoke=smoke, need_weights=need_weights)
    if isinstance(got, Obtained):
        return got
    obtained, skipped = train_missing(chapter, [got], smoke=smoke, workers=1)
    if skipped:
        raise skipped[0]
    return obtained[0]
