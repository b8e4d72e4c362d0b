"""Which epoch a run keeps: the per-epoch history, the best epoch on the selection split, patience.

The best epoch is the one with the highest top-1 on the selection split (held-out training images,
or the test split with ``selection="test"``); ties keep the earlier epoch. Early stopping ends a
run ``patience`` epochs after its last improvement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .evaluation import EvalResult

__all__ = ["Selection"]


@dataclass
class Selection:
    """The history so far and the best epoch (epochs are 1-based; ``None`` and no numbers: none yet)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "selection_acc": None,
                                                          "selection_top5": None, "selection_loss": None})
    since_best: int = 0
    best_test: EvalResult | None = None  #: the test split at the best epoch, when it was evaluated then

    def add(self, row: dict[str, float], selected: EvalResult, test: EvalResult | None) -> bool:
        """Append an epoch's row (``selected``: its selection split); True when it is the new best epoch."""
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
