"""A run's per-epoch history (:data:`HISTORY_COLUMNS`, one row per epoch from 1, accuracies as fractions)
and the epoch it keeps: the highest selection top-1 (ties keep the earlier epoch; the selection split and
the reported ``test_*`` columns are described in README's "Model selection"), early stopping after
``patience`` epochs without improvement. ``grad_norm`` is the epoch's mean global gradient norm (or NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .engine import NonFiniteLossError
from .evaluation import EvalResult

__all__ = ["HISTORY_COLUMNS", "HISTORY_REQUIRED", "Selection", "history_frame"]

#: one row per epoch, in this order, in ``history.csv``
HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "selection_loss", "selection_acc", "selection_top5", "test_loss", "test_acc",
    "ema_selection_acc", "lr", "grad_norm", "grad_norm_max", "seconds", "images_per_second",
)
#: the columns every figure and table needs
HISTORY_REQUIRED = ("epoch", "train_loss", "train_acc", "selection_loss", "selection_acc")
_PERCENT = ("train_acc", "selection_acc", "test_acc", "ema_selection_acc")


@dataclass
class Selection:
    """The history so far and the best epoch (epochs are 1-based; ``None`` and no numbers: none yet)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "selection_acc": None,
                                                          "selection_top5": None, "selection_loss": None})
    since_best: int = 0
    best_test: EvalResult | None = None  #: the test split at the best epoch, when it was evaluated then

    def add(self, row: dict[str, float], selected: EvalResult, test: EvalResult | None) -> bool:
        """Append an epoch's row (``selected``: its selection split); True when it is the new best epoch.
        A selection loss that is not finite is never a result: :class:`NonFiniteLossError`, nothing added."""
        if not math.isfinite(selected.loss):
            raise NonFiniteLossError(
                f"selection loss is {selected.loss} after epoch {row['epoch']} (the weights diverged): lower the "
                "learning rate or set grad_clip (e.g. grad_clip=1.0)")
        self.history.append(row)
        improved = self.best["epoch"] is None or selected.top1 > self.best["selection_acc"]
        if improved:
            self.best = {"epoch": int(row["epoch"]), "selection_acc": selected.top1,
                         "selection_top5": selected.top5, "selection_loss": selected.loss}
            self.best_test = test
        self.since_best = 0 if improved else self.since_best + 1
        return improved

    def should_stop(self, patience: int | None) -> bool:
        return patience is not None and self.since_best >= patience

    def peeked_top1(self) -> float | None:
        """The best test top-1 over the epochs (what selecting on the test split would report),
        when the test split was evaluated every epoch; else None."""
        tests = [h["test_acc"] for h in self.history if not math.isnan(h["test_acc"])]
        return max(tests) if tests and len(tests) == len(self.history) else None

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best, "since_best": self.since_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.best = list(state["history"]), dict(state["best"])
        self.since_best, self.best_test = int(state["since_best"]), None


def history_frame(history: Sequence[Mapping[str, Any]] | pd.DataFrame | Any) -> pd.DataFrame:
    """A run's history (a ``Run``, its ``history`` list or a frame) with accuracies in %."""
    if hasattr(history, "history"):
        history = history.history
    frame = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if frame.empty:
        raise ValueError("the run has no finished epoch yet (empty history)")
    missing = [c for c in HISTORY_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"history lacks columns {missing}; columns: {list(frame.columns)}")
    for col in _PERCENT:
        if col in frame.columns:
            frame[col] = 100.0 * frame[col]
    return frame
