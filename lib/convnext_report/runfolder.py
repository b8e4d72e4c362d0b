"""A run folder: its files, how a run claims, resumes and checkpoints it, and ``load_run``.

``<out_dir>/<run_name>/`` holds (every file written atomically, only by rank 0)::

    config.yaml          the resolved TrainConfig
    log.txt              the log lines also printed to stdout
    history.csv          one row per epoch (``history.HISTORY_COLUMNS``)
    record.json          environment, data sizes, timing, best epoch, status and stop reason
    checkpoint_last.pt   model/optimizer/scheduler/RNG/history after the latest epoch
    checkpoint_best.pt   the same, at the epoch of best validation top-1
    eval.json, eval.npz  final evaluation of the best weights (see evaluation.EvalResult)
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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

__all__ = [
    "CHECKPOINT_BEST", "CHECKPOINT_LAST", "RUNTIME_KEYS", "Run", "RunFolder", "load_checkpoint", "load_run",
    "open_folder", "rng_state", "set_rng_state",
]

#: config keys a resumed run takes from the passed config instead of the saved one
RUNTIME_KEYS = ("resume", "progress", "device", "compile", "data_dir", "out_dir", "run_name")
CHECKPOINT_LAST, CHECKPOINT_BEST = "checkpoint_last.pt", "checkpoint_best.pt"

_log = logging.getLogger("convnext_report.run")


@dataclass
class Run:
    """A run folder in memory. ``history`` is a list of per-epoch dicts (``history_df`` as a DataFrame);
    accuracies are fractions in [0, 1]; ``best`` holds epoch, val_acc, val_top5 and val_loss of the best epoch.
    Epochs are 0-based indices in every file and field (as in facebookresearch/ConvNeXt); log lines say
    ``epoch k/E`` counting from 1."""

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
        ckpt = load_checkpoint(self.path / f"checkpoint_{which}.pt")
        model = build_model_from_config(self.config.replace(pretrained=None), ckpt["num_classes"])
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def val_data(self) -> ImageTensors:
        """The validation images this run was evaluated on (row i = ``eval.indices`` i)."""
        return load_data(self.config, "val")


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


def open_folder(config: TrainConfig, info: DistInfo) -> tuple[Path, TrainConfig, dict | None, bool]:
    """(path, effective config, checkpoint to resume or None, run already finished); writes nothing.

    An existing folder is never overwritten: ``resume=True`` continues it from ``checkpoint_last.pt``
    (the saved ``config.yaml`` wins over the passed config except for :data:`RUNTIME_KEYS`); a finished
    run is simply loaded again, and a missing folder starts a new run.
    """
    if config.resume and not config.run_name:
        raise ValueError("resume=True needs run_name: the name of the run folder to continue")
    name = config.run_name or dist_utils.broadcast_object(
        f"{config.model}-{config.dataset}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = Path(config.out_dir) / name
    config = config.replace(run_name=name)
    exists = path.is_dir() and any(path.iterdir())
    dist_utils.barrier()  # every process looked before rank 0 may create the folder
    if not exists:
        return path, config, None, False
    if not config.resume:
        raise FileExistsError(f"run folder {path} already exists: pass resume=True to continue it, "
                              "or choose a new run_name")
    if read_json(path / "record.json").get("status") == "finished":
        return path, config, None, True
    ckpt = None
    if (path / CHECKPOINT_LAST).is_file():
        saved = load_config(path / "config.yaml")
        runtime = {k: getattr(config, k) for k in RUNTIME_KEYS}
        ignored = sorted(k for k in saved.to_dict() if k not in runtime and getattr(saved, k) != getattr(config, k))
        if ignored and info.is_main:
            print(f"resume: keeping the saved config.yaml values of {ignored}", file=sys.stderr)
        config = saved.replace(**runtime)
        ckpt = load_checkpoint(path / CHECKPOINT_LAST)
    return path, config, ckpt, False


@dataclass
class RunFolder:
    """Writes one run's files; every method is a no-op on processes other than rank 0."""

    path: Path
    is_main: bool
    log_handlers: list[logging.Handler] = field(default_factory=list)

    def create(self, config: TrainConfig, *, new: bool) -> None:
        """Make the folder, write config.yaml (new runs) and send the log to log.txt and stdout."""
        if self.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            if new:
                atomic_write(self.path / "config.yaml", lambda p: save_config(config.replace(resume=False), p))
            self.log_handlers = _attach_log(self.path / "log.txt")
        dist_utils.barrier()

    def close(self) -> None:
        """Detach the log file and stdout handlers of this run."""
        for h in self.log_handlers:
            _log.removeHandler(h)
            h.close()
        self.log_handlers = []

    def write_record(self, record: dict[str, Any]) -> None:
        if self.is_main:
            write_json_atomic(self.path / "record.json", record)

    def save_epoch(self, state: dict[str, Any], history: list[dict[str, float]], improved: bool) -> None:
        """``checkpoint_last.pt`` (and ``checkpoint_best.pt`` when ``improved``) and history.csv."""
        if self.is_main:
            torch_save_atomic(state, self.path / CHECKPOINT_LAST)
            if improved:
                tmp = self.path / (CHECKPOINT_BEST + ".tmp")
                shutil.copyfile(self.path / CHECKPOINT_LAST, tmp)
                tmp.replace(self.path / CHECKPOINT_BEST)
            write_text_atomic(self.path / "history.csv",
                              pd.DataFrame(history, columns=list(HISTORY_COLUMNS)).to_csv(index=False))
        dist_utils.barrier()

    def save_eval(self, result: EvalResult) -> None:
        if self.is_main:
            result.save(self.path)


def _attach_log(file: Path) -> list[logging.Handler]:
    """Send the run's log lines to ``file`` (appending) and stdout until removed."""
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(file), logging.StreamHandler(sys.stdout)]
    for h in handlers:
        h.setFormatter(fmt)
        _log.addHandler(h)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    return handlers


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, as plain types and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def best_from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": record.get("best_epoch"), "val_acc": record.get("best_val_top1"),
            "val_top5": record.get("best_val_top5"), "val_loss": record.get("best_val_loss")}
