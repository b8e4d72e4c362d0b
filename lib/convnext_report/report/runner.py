"""One run of a chapter: from the result store when it is there, else trained (if allowed and in time).

:func:`obtain` looks the run up by its key (:mod:`.keys`) in the store's layers (:mod:`.paths`);
a stored run is loaded (and, when publishing, copied into the committed store). A missing run is
trained into ``<runs>/<chapter>[-smoke]/<label>-s<seed>-<key[:8]>`` (resuming a killed one) and
stored as soon as it finishes, unless training is switched off (:class:`MissingRunError`) or the
plan's estimate says it cannot finish before the deadline (:class:`RunSkipped`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..engine import NonFiniteLossError
from ..runfolder import CHECKPOINT_BEST, Run, load_run
from ..training import train
from . import store
from .estimate import COMPILE_WARMUP_S, compile_shape, run_cost
from .keys import WEIGHT_SUFFIXES, entry_name, run_key
from .paths import committed_store_dir, store_layers
from .switches import DEADLINE_ENV, TRAIN_ENV, publishing, seconds_left, training_allowed

__all__ = ["DeadlineError", "HookFactory", "MissingRunError", "Obtained", "RunSkipped", "obtain"]


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


#: makes a run's ``on_epoch_end`` hook from its folder and config (None: no hook)
HookFactory = Callable[[Path, Any], "Callable[[dict[str, float]], None] | None"]


#: model shapes this process has compiled (their warm-up is paid once)
_COMPILED: set[tuple] = set()


def _estimate(config: Any) -> float:
    """The plan's estimate of a run, with the compile warm-up if this process has not compiled its shape."""
    shape = compile_shape(config)
    return run_cost(config).seconds + (COMPILE_WARMUP_S if shape is not None and shape not in _COMPILED else 0.0)


def obtain(chapter: str, label: str, config: Any, *, smoke: bool, hook: HookFactory | None = None,
           need_weights: bool = False) -> Obtained:
    """The run ``config`` describes: stored, or trained now and stored (see the module docstring).

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
    weights_here = (folder / CHECKPOINT_BEST).is_file()
    if entry is not None and need_weights and weights_here:
        return Obtained(load_run(folder), key, "store", entry)
    if entry is not None and not (need_weights and training_allowed()):
        return Obtained(store.load(entry, config), key, "store", entry)
    if not training_allowed():
        raise MissingRunError(_missing_message(chapter, label, config.seed, key, smoke))
    left = seconds_left()
    if left is not None:
        seconds = _estimate(config)
        if seconds > left:
            raise RunSkipped(label, config.seed, key, seconds, left)
    _check_weights(config, chapter)
    _COMPILED.add(compile_shape(config))
    try:
        run = train(config, on_epoch_end=hook(folder, config) if hook is not None else None)
    except NonFiniteLossError as err:  # diverged: keep the epochs before it, say so, go on
        print(f"{label} (seed {config.seed}) diverged and is reported up to its last finite epoch: {err}")
        run = load_run(folder)
    entry = store.put(folder, key=key, chapter=chapter, label=label, seed=config.seed, smoke=smoke,
                      replace=entry is not None)
    return Obtained(run, key, "trained", entry)
