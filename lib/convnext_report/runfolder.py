"""A run folder: its files, how a run claims, resumes and checkpoints it, and ``load_run``.

``<out_dir>/<run_name>/`` holds (every file written atomically, only by rank 0)::

    config.yaml          the resolved TrainConfig
    log.txt              the log lines also printed to stdout
    history.csv          one row per epoch (``history.HISTORY_COLUMNS``), epochs from 1
    record.json          environment, data sizes, timing, best epoch (None until one finished), status and
                         stop reason
    checkpoint_last.pt   model/optimizer/scheduler/RNG/history after the latest epoch (``epoch``: its number)
    checkpoint_best.pt   the same, at the epoch of best selection top-1 (held-out images, or the test split)
    eval.json, eval.npz  the reported (test) split, evaluated once with the selected weights
    dyt_alpha.csv        every DyT alpha, for DyT models: epoch 0 the initial values, epoch k after epoch k
    .lock                while a process owns the folder (``flock``), so two processes never
                         write one folder

Every file is replaced atomically, the latest checkpoint before the best one: a kill at any
point leaves a folder that ``resume=True`` continues to the same result (a best checkpoint
that missed its copy is restored from the latest one).
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
from typing import Any

import pandas as pd
import torch
from torch import nn

from . import distributed as dist_utils
from .atomic import atomic_write, torch_save_atomic, write_json_atomic, write_text_atomic
from .config import TrainConfig, load_config, save_config
from .data import ImageTensors
from .distributed import DistInfo
from .evaluation import EVAL_JSON, EvalResult
from .history import HISTORY_COLUMNS
from .models import build_model_from_config
from .parts import load_data

ALPHA_FILE = "dyt_alpha.csv"
_LOCK = ".lock"

__all__ = [
    "ALPHA_FILE", "CHECKPOINT_BEST", "CHECKPOINT_LAST", "RUNTIME_KEYS", "STORE_MARKER", "Run", "RunFolder",
    "load_checkpoint", "load_run", "open_folder",
]

#: config keys a resumed run takes from the passed config instead of the saved one
RUNTIME_KEYS = ("resume", "progress", "verbose", "device", "compile", "data_dir", "out_dir", "run_name")
CHECKPOINT_LAST, CHECKPOINT_BEST = "checkpoint_last.pt", "checkpoint_best.pt"
#: file marking a copy of a run's small files without weights (an entry of the book's result store)
STORE_MARKER = "store.json"

_log = logging.getLogger("convnext_report.run")


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
        if (self.path / STORE_MARKER).is_file() and not (self.path / f"checkpoint_{which}.pt").is_file():
            raise FileNotFoundError(
                f"{self.path} is a stored run: the result store keeps a run's small files (config, history, "
                "evaluation, predictions), never its weights. Train the run again to get a model, e.g. "
                f"`python -m convnext_report train --config {self.path / 'config.yaml'}`.")
        ckpt = load_checkpoint(self.path / f"checkpoint_{which}.pt")
        model = build_model_from_config(self.config.replace(pretrained=None), ckpt["num_classes"])
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def test_data(self) -> ImageTensors:
        """The images of the test (reported) split, the one ``eval`` describes (row i = ``eval.indices`` i)."""
        return load_data(self.config, "test")


def load_run(path: str | Path) -> Run:
    """Read a run folder written by :func:`convnext_report.training.train`."""
    path = Path(path)
    for name in ("config.yaml", "record.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a run folder: {name} is missing")
    history_file = path / "history.csv"
    history = pd.read_csv(history_file).to_dict("records") if history_file.is_file() else []
    record = read_json(path / "record.json")
    return Run(path=path, config=load_config(path / "config.yaml"), history=history, record=record,
               best=best_from_record(record))


def open_folder(config: TrainConfig, info: DistInfo) -> tuple["RunFolder", TrainConfig, dict | None, bool]:
    """Claim the run folder: (folder, effective config, checkpoint to resume or None, run already finished).

    Rank 0 creates the folder if needed and takes its lock (``flock``), so a second process with
    the same run folder fails at once instead of mixing two runs' files. A default name is unique
    (time and a random suffix). An existing folder is never overwritten: ``resume=True`` continues
    it from ``checkpoint_last.pt`` (the saved ``config.yaml`` wins over the passed config except
    for :data:`RUNTIME_KEYS`); a finished run is simply loaded again, and a missing folder starts a
    new run.
    """
    if config.resume and not config.run_name:
        raise ValueError("resume=True needs run_name: the name of the run folder to continue")
    name = config.run_name or dist_utils.broadcast_object(
        f"{config.model}-{config.dataset}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    config = config.replace(run_name=name)
    folder = RunFolder(Path(config.out_dir) / name, info.is_main)
    folder.claim()
    try:
        return (folder, *_resume_state(folder, config, info))
    except BaseException:
        folder.release(remove_if_new=True)
        raise


def _resume_state(folder: "RunFolder", config: TrainConfig, info: DistInfo) -> tuple[TrainConfig, dict | None, bool]:
    path = folder.path
    exists = any(p.name != _LOCK for p in path.iterdir()) if path.is_dir() else False
    dist_utils.barrier()  # every process looked before rank 0 writes
    if not exists:
        return config, None, False
    if not config.resume:
        raise FileExistsError(f"run folder {path} already exists: pass resume=True to continue it, "
                              "or choose a new run_name")
    if read_json(path / "record.json").get("status") == "finished":
        return config, None, True
    ckpt = None
    if (path / CHECKPOINT_LAST).is_file():
        saved = load_config(path / "config.yaml")
        runtime = {k: getattr(config, k) for k in RUNTIME_KEYS}
        ignored = sorted(k for k in saved.to_dict() if k not in runtime and getattr(saved, k) != getattr(config, k))
        if ignored and info.is_main:
            print(f"resume: keeping the saved config.yaml values of {ignored}", file=sys.stderr)
        config = saved.replace(**runtime)
        ckpt = load_checkpoint(path / CHECKPOINT_LAST)
        folder.repair_best(ckpt)
    return config, ckpt, False


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
                    raise FileExistsError(f"{self.path} exists and is not a folder") from None
            fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RuntimeError(f"run folder {self.path} is in use by another process; wait for it to finish "
                                   "or choose another run_name") from None
            self._lock_fd = fd
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
                atomic_write(self.path / "config.yaml", lambda p: save_config(config.replace(resume=False), p))
            self.log_handlers = _attach_log(self.path / "log.txt", stdout=config.verbose)
        dist_utils.barrier()

    def write_record(self, record: dict[str, Any]) -> None:
        if self.is_main:
            write_json_atomic(self.path / "record.json", record)

    def save_epoch(self, state: dict[str, Any], history: list[dict[str, float]], improved: bool) -> None:
        """``checkpoint_last.pt``, then (when ``improved``) ``checkpoint_best.pt``, then history.csv."""
        if self.is_main:
            torch_save_atomic(state, self.path / CHECKPOINT_LAST)
            if improved:
                self._copy_last_to_best()
            write_text_atomic(self.path / "history.csv",
                              pd.DataFrame(history, columns=list(HISTORY_COLUMNS)).to_csv(index=False))
        dist_utils.barrier()

    def repair_best(self, last: dict[str, Any]) -> None:
        """After a kill between the two checkpoint writes of an epoch, ``checkpoint_last.pt`` names
        itself the best epoch but ``checkpoint_best.pt`` is older: copy the latest onto it."""
        if not self.is_main or last["best"]["epoch"] != last["epoch"]:
            return
        best = self.path / CHECKPOINT_BEST
        if not best.is_file() or load_checkpoint(best)["epoch"] != last["epoch"]:
            self._copy_last_to_best()

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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def best_from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": record.get("best_epoch"), "selection_acc": record.get("best_selection_top1"),
            "selection_top5": record.get("best_selection_top5"), "selection_loss": record.get("best_selection_loss")}
