"""A run folder: its files and checkpoints, how a run claims and resumes it, and ``load_run``.

``<out_dir>/<run_name>/`` holds ``config.yaml`` (written first: it makes the folder a run folder), ``log.txt``,
``history.csv`` (one row per epoch, from 1), ``record.json`` (strict JSON), ``checkpoint_last.pt`` and
``checkpoint_best.pt``, ``eval.json``/``eval.npz`` (the reported split, evaluated once), ``dyt_alpha.csv``
(DyT models) and, while a process owns it, ``.lock``; every file is written atomically, by rank 0 only.
A folder that is not a run folder is never written into; a run continues only with its own settings; after
a kill at any moment ``resume=True`` makes the files agree with the latest checkpoint and continues to the
same result, or refuses with the choices when it would have to start over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from torch import nn

from . import distributed as dist_utils
from .atomic import atomic_write, torch_save_atomic, write_json_atomic, write_text_atomic
from .config import TrainConfig, field_names, format_value, from_dict, load_config, save_config
from .data import ImageTensors
from .distributed import DistInfo
from .errors import UserError
from .evaluation import EVAL_JSON, EVAL_NPZ, EvalResult
from .models import UnreadableCheckpointError, build_model_from_config
from .models.pretrained import unreadable_reason
from .parts import load_data
from .selection import HISTORY_COLUMNS

__all__ = [
    "ALPHA_FILE", "CHECKPOINT_BEST", "CHECKPOINT_LAST", "RUNTIME_KEYS", "Resumed", "Run", "RunFolder",
    "RunFolderError", "load_checkpoint", "load_run", "open_folder", "read_json", "resume_config",
]

#: config keys a resumed run may change (where and how it runs, not what it computes)
RUNTIME_KEYS = ("resume", "progress", "verbose", "device", "compile", "data_dir", "out_dir", "run_name")
CHECKPOINT_LAST, CHECKPOINT_BEST = "checkpoint_last.pt", "checkpoint_best.pt"
ALPHA_FILE = "dyt_alpha.csv"
_CONFIG, _HISTORY, _RECORD, _LOCK = "config.yaml", "history.csv", "record.json", ".lock"
#: the files a run writes (their interrupted temporary copies are removed when a process claims the folder)
_OWN_FILES = (_CONFIG, "log.txt", _HISTORY, _RECORD, CHECKPOINT_LAST, CHECKPOINT_BEST, EVAL_JSON, EVAL_NPZ, ALPHA_FILE)

_log = logging.getLogger("convnext_report.run")


class RunFolderError(UserError, RuntimeError):
    """A run folder that cannot be used as asked (in use, not a run folder, other settings, damaged): nothing
    was trained or overwritten, and the message lists the choices."""


@dataclass
class Run:
    """A run folder in memory. ``history`` is a list of per-epoch dicts (``history_df`` as a DataFrame);
    accuracies are fractions in [0, 1]; ``best`` holds epoch, selection_acc, selection_top5 and selection_loss of
    the best epoch.
    Epochs count from 1 in every file, field and log line (``epoch k/E``); ``dyt_alpha.csv`` adds epoch 0,
    the initial values."""

    path: Path
    config: TrainConfig
    history: list[dict[str, float]]
    record: dict[str, Any]
    best: dict[str, Any]
    _eval: EvalResult | None = field(default=None, repr=False)

    @property
    def eval(self) -> EvalResult:
        """Final evaluation of the best weights, read from eval.json/eval.npz on first use."""
        if self._eval is None:
            if not (self.path / EVAL_JSON).is_file():
                raise FileNotFoundError(f"{self.path} has no {EVAL_JSON}: the run did not finish (resume it)")
            self._eval = EvalResult.load(self.path)
        return self._eval

    @property
    def history_df(self) -> pd.DataFrame:
        return pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))

    def load_model(self, which: str = "best", device: str | torch.device = "cpu") -> nn.Module:
        """The model with the weights of ``checkpoint_<which>.pt`` ("best" or "last"), in eval mode."""
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        file = self.path / f"checkpoint_{which}.pt"
        if not file.is_file():  # e.g. a copy of the run's small files, which keeps no weights
            raise FileNotFoundError(f"{self.path} holds no {file.name}: train the run again to get its weights, "
                                    f"e.g. `python -m convnext_report train --config {self.path / _CONFIG}`")
        ckpt = load_checkpoint(file)
        model = build_model_from_config(self.config.replace(pretrained=None), ckpt["num_classes"])
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def test_data(self) -> ImageTensors:
        """The images of the test (reported) split, the one ``eval`` describes (row i = ``eval.indices`` i)."""
        return load_data(self.config, "test")


def load_run(path: str | Path) -> Run:
    """Read a run folder written by :func:`convnext_report.training.train`."""
    path = Path(path)
    for name in (_CONFIG, _RECORD):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a run folder: {name} is missing")
    history_file = path / _HISTORY
    history = pd.read_csv(history_file).to_dict("records") if history_file.is_file() else []
    record = read_json(path / _RECORD)
    best = {"epoch": record.get("best_epoch"), "selection_acc": record.get("best_selection_top1"),
            "selection_top5": record.get("best_selection_top5"), "selection_loss": record.get("best_selection_loss")}
    return Run(path=path, config=load_config(path / _CONFIG), history=history, record=record, best=best)


def resume_config(given: Mapping[str, Any]) -> TrainConfig:
    """The defaults with the keys ``given``; with ``resume=true`` and an existing run folder, its saved
    ``config.yaml`` with them (so only what differs has to be given)."""
    config = from_dict(dict(given))
    saved = Path(config.out_dir) / (config.run_name or "") / _CONFIG
    if not (config.resume and config.run_name and saved.is_file()):
        return config
    return load_config(saved).replace(**given)


@dataclass(frozen=True)
class Resumed:
    """What a claimed folder holds: nothing (``new``), a stopped run (its last ``checkpoint``, None when no
    epoch had finished, and ``record``), or a ``finished`` run."""

    new: bool
    checkpoint: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    finished: bool = False


def open_folder(config: TrainConfig, info: DistInfo) -> tuple["RunFolder", TrainConfig, Resumed]:
    """Claim the run folder (rank 0 takes its lock): (folder, config with its ``run_name``, what the folder
    holds). A default name is unique (time and a random suffix). An existing folder is never overwritten:
    ``resume=True`` continues it when its ``config.yaml`` agrees with ``config`` (but for :data:`RUNTIME_KEYS`),
    a finished run is loaded again, and a missing folder starts a new run."""
    if config.resume and not config.run_name:
        raise ValueError("resume=True needs run_name: the name of the run folder to continue")
    name = config.run_name or dist_utils.broadcast_object(
        f"{config.model}-{config.dataset}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    config = config.replace(run_name=name)
    folder = RunFolder(Path(config.out_dir) / name, info.is_main)
    folder.claim()
    try:
        return folder, config, _resume_state(folder, config)
    except BaseException:
        folder.release(remove_if_new=True)
        raise


def _resume_state(folder: "RunFolder", config: TrainConfig) -> Resumed:
    path = folder.path
    folder.tidy()
    files = sorted(p.name for p in path.iterdir() if p.name != _LOCK) if path.is_dir() else []
    dist_utils.barrier()  # every process looked before rank 0 writes
    if not files:
        return Resumed(new=True)
    if _CONFIG not in files:
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        raise RunFolderError(
            f"{path} is not a run folder: it holds {shown} but no {_CONFIG} (every run folder gets one when its run "
            "starts), so nothing was written into it. Choose another run_name or out_dir.")
    if not config.resume:
        raise FileExistsError(f"run folder {path} already exists: pass resume=True to continue it, "
                              "or choose a new run_name")
    record = read_json(path / _RECORD)
    finished = record.get("status") == "finished"
    _check_settings(load_config(path / _CONFIG), config, path, finished)
    if finished:
        return Resumed(new=False, record=record, finished=True)
    ckpt = _last_checkpoint(path, record)
    if ckpt is not None:
        best = ckpt["best"]["epoch"]
        copy_best = _checkpoint_epoch(path / CHECKPOINT_BEST) != best
        if copy_best and best != ckpt["epoch"]:
            raise RunFolderError(
                f"{path / CHECKPOINT_BEST} does not hold the best epoch {best} (it is missing or damaged), and "
                f"{CHECKPOINT_LAST} is at epoch {ckpt['epoch']}: the best epoch's weights are lost, so nothing was "
                "trained. Train the run again under a new run_name.")
        folder.sync(ckpt, copy_best=copy_best)
    return Resumed(new=False, checkpoint=ckpt, record=record)


def _check_settings(saved: TrainConfig, given: TrainConfig, path: Path, finished: bool) -> None:
    """Refuse to resume with settings that differ from the saved ones (other than :data:`RUNTIME_KEYS`)."""
    changed = [k for k in field_names() if k not in RUNTIME_KEYS and getattr(saved, k) != getattr(given, k)]
    if not changed:
        return
    shown = "; ".join(f"{k}: saved {format_value(getattr(saved, k))}, given {format_value(getattr(given, k))}"
                      for k in changed)
    why = ("it finished, and a finished run is never trained again" if finished else
           "a run continues with the settings it started with")
    longer = (" For more epochs, start a new run with the new epochs (the learning-rate schedule spans all epochs, "
              "so a longer run is a different run)." if "epochs" in changed else "")
    raise RunFolderError(
        f"run folder {path} holds a run with other settings ({shown}): {why}, so nothing was trained. Give the "
        f"saved values (on the command line, leave them out: 'train run_name={path.name} resume=true' continues with "
        f"its {_CONFIG}), or start a new run under a new run_name.{longer}")


def _last_checkpoint(path: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """``checkpoint_last.pt``, or None when no epoch finished; refused when damaged, or missing after epochs."""
    last = path / CHECKPOINT_LAST
    if last.is_file():
        try:
            return load_checkpoint(last)
        except UnreadableCheckpointError as err:
            raise RunFolderError(f"{err}; nothing was trained. {_choices(path)}") from err
    done = [n for n in (CHECKPOINT_BEST, _HISTORY) if (path / n).is_file()]
    if done or record.get("epochs_run"):
        raise RunFolderError(
            f"{last} is missing, but the run has finished epochs ({', '.join(done) or _RECORD}): resuming would "
            f"start it again from epoch 1 and overwrite them, so nothing was trained. {_choices(path)}")
    return None


def _checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint holds, or None when it is missing or damaged."""
    try:
        return int(load_checkpoint(path)["epoch"])
    except (FileNotFoundError, UnreadableCheckpointError):
        return None


def _choices(path: Path) -> str:
    """What a user can do when ``checkpoint_last.pt`` cannot be used."""
    best, epoch = path / CHECKPOINT_BEST, _checkpoint_epoch(path / CHECKPOINT_BEST)
    if epoch is None:
        return "No intact checkpoint is left: train the run again under a new run_name (this folder stays as it is)."
    return (f"{best} (epoch {epoch}) is intact: to continue from it (the epochs after {epoch} are trained again, to "
            f"the same result), copy it: cp {best} {path / CHECKPOINT_LAST}, then resume again; or train the run "
            "again under a new run_name.")


@dataclass
class RunFolder:
    """Writes one run's files; every method is a no-op on processes other than rank 0."""

    path: Path
    is_main: bool
    log_handlers: list[logging.Handler] = field(default_factory=list)
    created: bool = False  #: this process made the folder (removed again if the run never starts)
    _lock_fd: int | None = field(default=None, repr=False)

    def claim(self) -> None:
        """Create the folder if needed and take its lock; a folder locked by another process is an error."""
        if self.is_main:
            try:
                self.path.mkdir(parents=True)
                self.created = True
            except FileExistsError:
                if not self.path.is_dir():
                    raise RunFolderError(f"{self.path} exists and is not a folder: choose another run_name") from None
            except OSError as err:
                raise RunFolderError(f"cannot create the run folder {self.path} ({err.strerror}): out_dir must be "
                                     "a folder this process can write") from err
            fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderError(f"run folder {self.path} is in use by another process; wait for it to finish "
                                     "or choose another run_name") from None
            self._lock_fd = fd
        dist_utils.barrier()

    def tidy(self) -> None:
        """Put right what a killed process left (this process holds the lock: nothing else writes here):
        remove the temporary files of writes it cut short, and mark a record that still says "running"
        as failed ("killed")."""
        if self.is_main:
            for tmp in self.path.glob(".*.tmp"):
                if tmp.name.startswith(tuple(f".{name}." for name in _OWN_FILES)):
                    tmp.unlink(missing_ok=True)
            record = read_json(self.path / _RECORD)
            if record.get("status") == "running":
                self.write_record({**record, "status": "failed", "stop_reason": "killed", "error": (
                    "the process running it ended without a word (SIGKILL, out of memory or a power loss)")})
        dist_utils.barrier()

    def release(self, *, remove_if_new: bool = False) -> None:
        """Detach the log handlers and drop the lock (and the folder, if this process made it and
        ``remove_if_new``: a run that failed before its first epoch leaves nothing behind)."""
        for h in self.log_handlers:
            _log.removeHandler(h)
            h.close()
        self.log_handlers = []
        if remove_if_new and self.created and self.is_main:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            # unlinked while still held: a process that opens the path later makes a new, free lock file
            (self.path / _LOCK).unlink(missing_ok=True)
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def create(self, config: TrainConfig, *, new: bool) -> None:
        """Write config.yaml (new runs) and send the log to log.txt (and stdout when ``config.verbose``)."""
        if self.is_main:
            if new:
                atomic_write(self.path / _CONFIG, lambda p: save_config(config.replace(resume=False), p))
            self.log_handlers = _attach_log(self.path / "log.txt", stdout=config.verbose)
        dist_utils.barrier()

    def write_record(self, record: dict[str, Any]) -> None:
        if self.is_main:
            write_json_atomic(self.path / _RECORD, record)

    def save_epoch(self, state: dict[str, Any], history: list[dict[str, float]], improved: bool) -> None:
        """``checkpoint_last.pt``, then (when ``improved``) ``checkpoint_best.pt``, then history.csv."""
        if self.is_main:
            torch_save_atomic(state, self.path / CHECKPOINT_LAST)
            if improved:
                self._copy_last_to_best()
            self._write_history(history)
        dist_utils.barrier()

    def sync(self, last: dict[str, Any], *, copy_best: bool) -> None:
        """Make the files agree with ``last`` (the latest checkpoint) after a kill: history.csv is its history,
        dyt_alpha.csv ends at its epoch, and (``copy_best``: a kill between the two checkpoint writes of the
        best epoch) checkpoint_best.pt becomes a copy of it."""
        if not self.is_main:
            return
        self._write_history(last["history"])
        alphas = self.path / ALPHA_FILE
        if alphas.is_file():
            frame = pd.read_csv(alphas)
            write_text_atomic(alphas, frame[frame["epoch"] <= last["epoch"]].to_csv(index=False))
        if copy_best:
            self._copy_last_to_best()

    def _write_history(self, history: list[dict[str, float]]) -> None:
        frame = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
        write_text_atomic(self.path / _HISTORY, frame.to_csv(index=False))

    def _copy_last_to_best(self) -> None:
        atomic_write(self.path / CHECKPOINT_BEST, lambda p: shutil.copyfile(self.path / CHECKPOINT_LAST, p))

    def write_alphas(self, epoch: int, alphas: dict[str, float]) -> None:
        """Add (or replace) the rows of ``epoch`` in ``dyt_alpha.csv`` (columns epoch, layer, alpha)."""
        if not self.is_main or not alphas:
            return
        file = self.path / ALPHA_FILE
        old = pd.read_csv(file) if file.is_file() else pd.DataFrame(columns=["epoch", "layer", "alpha"])
        new = pd.DataFrame({"epoch": epoch, "layer": list(alphas), "alpha": list(alphas.values())})
        frame = pd.concat([old[old["epoch"] != epoch], new]) if len(old) else new
        write_text_atomic(file, frame.to_csv(index=False))

    def save_eval(self, result: EvalResult) -> None:
        if self.is_main:
            result.save(self.path)


def _attach_log(file: Path, *, stdout: bool) -> list[logging.Handler]:
    """Send the run's log lines to ``file`` (appending), and to stdout when ``stdout``, until removed."""
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(file)]
    if stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    for h in handlers:
        h.setFormatter(fmt)
        _log.addHandler(h)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    return handlers


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint this library wrote (weights only); a damaged one is an error that says why."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise UnreadableCheckpointError(f"checkpoint {path} cannot be read: {unreadable_reason(path, err)}") from err


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when there is no file); a damaged file is an error naming it."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise RunFolderError(f"{path} cannot be read as JSON ({err}): it was changed or damaged outside this "
                             "library; repair it, or train the run again under a new run_name") from None
