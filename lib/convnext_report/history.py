"""A run's per-epoch history: the columns the loop writes and the frame the book shows.

``selection_*`` is the split that selects the epoch: a held-out part of the training split
(``selection="holdout"``, the default) or the test split itself (``selection="test"``, the
sources' protocol). ``test_*`` is the reported split, filled every epoch only when it is the
selection split or ``test_every_epoch`` is set (else NaN): it shows what selecting on the
reported split would have reported, and is never used to select. ``grad_norm`` is the mean
global gradient norm of the epoch's steps (NaN when not measured).

Epochs count from 1 (the first epoch is 1) and accuracies are fractions in [0, 1], as the loop
writes them; tables and figures show percent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["HISTORY_COLUMNS", "HISTORY_REQUIRED", "history_frame"]

#: one row per epoch, in this order, in ``history.csv``
HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "selection_loss", "selection_acc", "selection_top5", "test_loss", "test_acc",
    "ema_selection_acc", "lr", "grad_norm", "grad_norm_max", "seconds", "images_per_second",
)
#: the columns every figure and table needs
HISTORY_REQUIRED = ("epoch", "train_loss", "train_acc", "selection_loss", "selection_acc")
_PERCENT = ("train_acc", "selection_acc", "test_acc", "ema_selection_acc")


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
