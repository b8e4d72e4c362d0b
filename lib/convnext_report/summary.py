"""Finished runs as numbers: one row per run (:func:`run_summary`), frames of many runs, seed statistics and the
per-epoch and DyT-alpha frames that :mod:`.figures` plots. Accuracies in percent."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .runfolder import ALPHA_FILE
from .selection import history_frame

__all__ = ["alpha_frame", "curves_frame", "run_summary", "runs_frame", "stage_of", "summarise"]


def run_summary(run: Any, *, label: str | None = None) -> dict[str, Any]:
    """One row for a finished run (%): ``top1``/``top5`` on test at the selected epoch, ``selection_top1`` there,
    ``peeked_top1`` the best test top-1 over epochs (NaN unless evaluated each epoch), ``gap`` train minus test."""
    frame, cfg, record = history_frame(run), run.config.to_dict(), run.record or {}
    best = frame.loc[int(frame["selection_acc"].idxmax())]
    top1 = _percent(record.get("final_top1"), fallback=float(best["selection_acc"]))
    seconds = record.get("wall_time_seconds")
    minutes = float(seconds if seconds is not None else frame.get("seconds", pd.Series([math.nan])).sum()) / 60.0
    return {
        "label": label or cfg.get("extra", {}).get("label") or cfg.get("run_name") or cfg.get("model"),
        **{k: cfg.get(k) for k in ("seed", "model", "dataset", "image_size", "optimizer", "norm", "stem_stride")},
        "recipe": (cfg.get("extra") or {}).get("recipe"), "selection": cfg.get("selection", "test"), "top1": top1,
        "top5": _percent(record.get("final_top5")),
        "selected_epoch": int(best["epoch"]), "epochs_run": int(frame["epoch"].max()),
        "selection_top1": float(best["selection_acc"]), "train_top1": float(best["train_acc"]),
        "gap": float(best["train_acc"]) - top1, "peeked_top1": _percent(record.get("peeked_top1")),
        "params_M": record["params_total"] / 1e6 if record.get("params_total") else math.nan,
        "images_per_second": float(frame.get("images_per_second", pd.Series([math.nan])).mean()),
        "minutes": minutes, "gpu_minutes": minutes if str(record.get("device", "")).startswith("cuda") else 0.0,
        "device": str(record.get("device_name") or record.get("device") or cfg.get("device", "")),
        "trained": str(record.get("end_time") or "")[:10], "run": Path(str(run.path)).name,
    }


def _percent(fraction: float | None, fallback: float = math.nan) -> float:
    return fallback if fraction is None else 100.0 * float(fraction)


def runs_frame(runs: Iterable[Any] | Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """One row per run (:func:`run_summary`); a mapping ``label -> runs`` sets the labels."""
    groups = runs.items() if isinstance(runs, Mapping) else [(None, runs)]
    return pd.DataFrame([run_summary(r, label=label) for label, group in groups for r in group])


def summarise(frame: pd.DataFrame, by: str | Sequence[str] = "label", metrics: Sequence[str] = ("top1",)) -> pd.DataFrame:
    """Seed mean, std (ddof=1) and count ``n`` per group; several metrics: ``<metric>_mean``, ``<metric>_std``."""
    grouped = frame.groupby([by] if isinstance(by, str) else list(by), sort=False)
    stats = {f"{m}_{s}" if len(metrics) > 1 else s: (m, s) for m in metrics for s in ("mean", "std")}
    return grouped.agg(n=(metrics[0], "count"), **stats, gpu_minutes=("gpu_minutes", "sum")).reset_index()


def curves_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Long per-epoch frame (``label``, ``seed``, ``epoch``, metrics) for :func:`.figures.plot_curves`."""
    return pd.concat([history_frame(run).assign(label=label, seed=run.config.seed)
                      for label, group in runs.items() for run in group], ignore_index=True)


def stage_of(layer: str) -> str:
    """``"stem"``, ``"stage 3"`` ... for a parameter or layer name of a ConvNeXt."""
    parts = layer.split(".")
    return f"stage {int(parts[1]) + 1}" if parts[0] == "stages" and len(parts) > 1 else parts[0]


def alpha_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """DyT alphas per epoch and layer from the runs' ``dyt_alpha.csv`` (empty if no run logged any), for
    :func:`.figures.plot_alpha`."""
    parts = [pd.read_csv(Path(run.path) / ALPHA_FILE).assign(label=label, seed=run.config.seed)
             for label, group in runs.items() for run in group if (Path(run.path) / ALPHA_FILE).is_file()]
    columns = ["label", "seed", "epoch", "layer", "stage", "alpha"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame.assign(stage=frame["layer"].map(stage_of))[columns]
