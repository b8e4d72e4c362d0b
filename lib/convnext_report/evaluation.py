"""Evaluation results: accuracies, per-class numbers, confusion matrix and sample picks.

Accuracies are fractions in [0, 1]. Row ``i`` of every array describes image ``indices[i]`` of the
evaluated :class:`~convnext_report.data.ImageTensors` (for a run's ``eval``, the test split; the
order the evaluation loader read them in), so figures can show the image next to its prediction.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write, write_json_atomic

__all__ = ["EVAL_JSON", "EVAL_NPZ", "EvalResult", "first_classes", "pick_samples"]

EVAL_JSON = "eval.json"
EVAL_NPZ = "eval.npz"


@dataclass
class EvalResult:
    """Predictions of a model over a labelled split."""

    labels: np.ndarray  #: (N,) true class
    predictions: np.ndarray  #: (N,) top-1 predicted class
    top5_predictions: np.ndarray  #: (N, k) top-k classes, best first, k = min(5, num_classes)
    confidence: np.ndarray  #: (N,) softmax probability of the top-1 prediction
    loss: float  #: mean cross-entropy (no label smoothing)
    class_names: list[str]
    indices: np.ndarray = field(default=None)  # type: ignore[assignment]  #: (N,) row in the evaluated ImageTensors
    split_rows: np.ndarray | None = None  #: (N,) row in the full split (``ImageTensors.rows``) when a subset

    def __post_init__(self) -> None:
        if self.indices is None:
            self.indices = np.arange(len(self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return int(len(self.labels))

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool: top-1 prediction is right."""
        return self.predictions == self.labels

    @property
    def top1(self) -> float:
        return float(self.correct.mean()) if self.num_images else float("nan")

    @property
    def top5(self) -> float:
        """Top-k accuracy with k = min(5, num_classes)."""
        if not self.num_images:
            return float("nan")
        return float((self.top5_predictions == self.labels[:, None]).any(axis=1).mean())

    @property
    def confusion_matrix(self) -> np.ndarray:
        """(C, C) counts; rows are true classes, columns predictions."""
        c = self.num_classes
        flat = self.labels.astype(np.int64) * c + self.predictions.astype(np.int64)
        return np.bincount(flat, minlength=c * c).reshape(c, c)

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """(C,) top-1 accuracy of each class (NaN for a class with no images)."""
        cm = self.confusion_matrix
        totals = cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)

    def summary(self) -> dict[str, Any]:
        """What ``eval.json`` holds."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "loss": self.loss,
            "num_images": self.num_images,
            "num_classes": self.num_classes,
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in self.per_class_accuracy],
            "class_names": list(self.class_names),
        }

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``eval.json`` (numbers) and ``eval.npz`` (arrays for figures) into ``folder``.

        The arrays are compact (a result store keeps them): the smallest unsigned integer type for
        labels, predictions, top-5 classes and rows, float16 confidences, compressed; the confusion
        matrix is not stored (it is recomputed from labels and predictions).
        """
        folder = Path(folder)
        write_json_atomic(folder / EVAL_JSON, self.summary())
        classes = max(self.num_classes, 1)
        arrays = {
            "labels": _compact(self.labels, classes),
            "predictions": _compact(self.predictions, classes),
            "top5_predictions": _compact(self.top5_predictions, classes),
            "confidence": np.asarray(self.confidence, dtype=np.float16),
            "indices": _compact(self.indices),
        }
        if self.split_rows is not None:
            arrays["split_rows"] = _compact(self.split_rows)
        # np.savez appends ".npz" to names without it, so write through an open file
        atomic_write(folder / EVAL_NPZ, lambda p: _savez(p, arrays))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "EvalResult":
        """Read what :meth:`save` wrote (compact files and the older int64/float32 ones alike)."""
        folder = Path(folder)
        summary = json.loads((folder / EVAL_JSON).read_text())
        with np.load(folder / EVAL_NPZ) as z:
            top5 = z["top5_predictions"].astype(np.int64)
            return cls(
                labels=z["labels"].astype(np.int64),
                predictions=z["predictions"].astype(np.int64) if "predictions" in z.files else top5[:, 0].copy(),
                top5_predictions=top5,
                confidence=z["confidence"].astype(np.float32),
                loss=math.nan if summary["loss"] is None else float(summary["loss"]),  # strict JSON: NaN is null
                class_names=list(summary["class_names"]),
                indices=z["indices"].astype(np.int64),
                split_rows=z["split_rows"].astype(np.int64) if "split_rows" in z.files else None,
            )


def _compact(values: np.ndarray, bound: int | None = None) -> np.ndarray:
    """``values`` (non-negative integers) in the smallest unsigned type holding them (and ``bound - 1``)."""
    values = np.asarray(values)
    top = max(int(values.max()) if values.size else 0, (bound or 1) - 1)
    if values.size and int(values.min()) < 0:
        return values.astype(np.int64)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _rows(result: EvalResult, positions: np.ndarray) -> pd.DataFrame:
    """One row per picked position: image index, label and prediction (ids and names)."""
    positions = np.asarray(positions, dtype=np.int64)
    names = np.asarray(result.class_names, dtype=object)
    labels, preds = result.labels[positions], result.predictions[positions]
    return pd.DataFrame(
        {
            "index": result.indices[positions],
            "label": labels,
            "label_name": names[labels] if len(positions) else [],
            "prediction": preds,
            "prediction_name": names[preds] if len(positions) else [],
            "correct": labels == preds,
            "confidence": result.confidence[positions],
        }
    )


def pick_samples(result: EvalResult, n_correct: int = 8, n_wrong: int = 8, seed: int = 0) -> pd.DataFrame:
    """Random correct then random wrong predictions (fewer if there are not enough).

    Columns: ``index`` (row of the evaluated ImageTensors, e.g. ``run.test_data()``), ``label``, ``label_name``,
    ``prediction``, ``prediction_name``, ``correct``, ``confidence``.
    """
    rng = np.random.default_rng(seed)
    correct = np.flatnonzero(result.correct)
    wrong = np.flatnonzero(~result.correct)
    picks = [
        rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else pool
        for pool, n in ((correct, n_correct), (wrong, n_wrong))
    ]
    return _rows(result, np.concatenate(picks))


def first_classes(result: EvalResult, k: int = 16, seed: int | None = None) -> pd.DataFrame:
    """One sample of each of the classes 0..k-1 with its prediction (same columns as :func:`pick_samples`).

    ``seed=None`` takes each class's first image in evaluation order, else a random one.
    """
    rng = np.random.default_rng(seed)
    positions = []
    for cls in range(min(k, result.num_classes)):
        pool = np.flatnonzero(result.labels == cls)
        if len(pool):
            positions.append(pool[0] if seed is None else rng.choice(pool))
    return _rows(result, np.array(positions, dtype=np.int64))
