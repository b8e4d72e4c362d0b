"""Tables of runs for the book: one row per run, seed means ± std, pivots and per-stage shapes.

Chapters hand runs (``Run`` objects or stored runs) to :func:`runs_frame` and summarise seeds with
:func:`summarise` (mean ± std); nothing here trains or plots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .. import complexity
from ..history import history_frame
from ..models import build_model

__all__ = [
    "curves_frame", "describe_data", "field_of", "describe_resolution", "mean_std", "pivot_mean_std", "run_summary", "runs_frame",
    "select", "stage_of", "stage_table", "summarise", "throughput", "versus_reference",
]


def field_of(obj: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` found as a key of a mapping or an attribute of an object, else ``default``."""
    for name in names:
        if isinstance(obj, Mapping) and name in obj:
            return obj[name]
        if not isinstance(obj, Mapping) and hasattr(obj, name):
            return getattr(obj, name)
    return default


def run_summary(run: Any, *, label: str | None = None) -> dict[str, Any]:
    """One row for a finished run: best val top-1, its epoch, the train/val gap there, time and device."""
    frame = history_frame(run)
    config = field_of(run, "config")
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    best_i = int(frame["val_acc"].idxmax())
    best = frame.loc[best_i]
    record = field_of(run, "record", default={}) or {}
    seconds = record.get("wall_time_seconds")
    if seconds is None and "seconds" in frame.columns:
        seconds = float(frame["seconds"].sum())
    device = str(record.get("device_name") or record.get("device") or cfg.get("device", ""))
    on_gpu = str(record.get("device", "")).startswith("cuda")
    minutes = float(seconds) / 60.0 if seconds is not None else float("nan")
    return {
        "label": label or cfg.get("extra", {}).get("label") or cfg.get("run_name") or cfg.get("model"),
        "seed": cfg.get("seed"),
        "model": cfg.get("model"),
        "dataset": cfg.get("dataset"),
        "image_size": cfg.get("image_size"),
        "optimizer": cfg.get("optimizer"),
        "norm": cfg.get("norm"),
        "stem_stride": cfg.get("stem_stride"),
        "recipe": (cfg.get("extra") or {}).get("recipe"),
        "best_val_acc": float(best["val_acc"]),
        "best_val_loss": float(best["val_loss"]),
        "best_epoch": int(best["epoch"]),
        "epochs_run": int(frame["epoch"].max()),
        "train_acc_at_best": float(best["train_acc"]),
        "gap_at_best": float(best["train_acc"] - best["val_acc"]),
        "minutes": minutes,
        "gpu_minutes": minutes if on_gpu else 0.0,
        "device": device,
        "run": str(field_of(run, "path", default="")),
    }


def runs_frame(runs: Iterable[Any] | Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """One row per run (see :func:`run_summary`); a mapping ``label -> runs`` sets the labels."""
    if isinstance(runs, Mapping):
        rows = [run_summary(r, label=label) for label, group in runs.items() for r in group]
    else:
        rows = [run_summary(r) for r in runs]
    return pd.DataFrame(rows)


def curves_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Long per-epoch frame (``label``, ``seed``, ``epoch``, metrics) for :func:`figures.plot_curves`."""
    parts = []
    for label, group in runs.items():
        for run in group:
            frame = history_frame(run)
            config = field_of(run, "config")
            frame = frame.assign(label=label, seed=getattr(config, "seed", None))
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def summarise(frame: pd.DataFrame, by: str | Sequence[str] = "label",
              metrics: Sequence[str] = ("best_val_acc",)) -> pd.DataFrame:
    """Seed mean, standard deviation (ddof=1; NaN for one seed) and count per group, order kept."""
    by = [by] if isinstance(by, str) else list(by)
    grouped = frame.groupby(by, sort=False)
    parts = []
    for m in metrics:
        stats = grouped[m].agg(["mean", "std", "count"])
        stats.columns = [f"{m}_mean", f"{m}_std", "n"] if len(metrics) > 1 else ["mean", "std", "n"]
        parts.append(stats)
    out = pd.concat(parts, axis=1)
    out = out.loc[:, ~out.columns.duplicated()]
    if "minutes" in frame.columns:
        out["minutes"] = grouped["minutes"].sum()
        out["gpu_minutes"] = grouped["gpu_minutes"].sum()
    return out.reset_index()


def mean_std(mean: float, std: float | None = None, n: int | None = None, *, digits: int = 1,
             unit: str = "") -> str:
    """``"45.2 ± 1.1 (3 seeds)"``; the ± part only when there are two seeds or more."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = f"{mean:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)) and (n or 2) > 1:
        text += f" ± {std:.{digits}f}"
    text += unit
    if n is not None:
        text += f" ({n} seed{'s' if n != 1 else ''})"
    return text


def describe_data(config: Any) -> str:
    """``"cifar10, 500 train/class"`` or ``"tiny-imagenet-32, all train"`` for a run's config."""
    per_class = getattr(config, "train_per_class", None)
    return f"{config.dataset}, {per_class if per_class else 'all'} train/class"


def describe_resolution(config: Any) -> str:
    """``"32 px, stem stride 2"`` for a run's config."""
    return f"{config.image_size} px, stem stride {config.stem_stride}"


def pivot_mean_std(summary: pd.DataFrame, *, index: str | list[str], columns: str, digits: int = 1) -> pd.DataFrame:
    """``mean ± std`` strings of a :func:`summarise` frame laid out as ``index`` × ``columns``."""
    text = summary.assign(cell=[mean_std(m, s, None, digits=digits)
                                for m, s in zip(summary["mean"], summary["std"])])
    out = text.pivot(index=index, columns=columns, values="cell")
    rows = list(dict.fromkeys(map(tuple, summary[index].to_numpy()))) if isinstance(index, list) \
        else list(dict.fromkeys(summary[index]))
    out = out.reindex(index=rows, columns=list(dict.fromkeys(summary[columns])))
    return out.fillna("—")


def select(runs: Mapping[str, Sequence[Any]], **where: Any) -> dict[str, list[Any]]:
    """The labels whose runs' configs match every ``field=value`` (e.g. ``dataset="cifar10"``)."""
    def keep(run: Any) -> bool:
        config = field_of(run, "config")
        return all(getattr(config, k) == v for k, v in where.items())

    return {label: list(group) for label, group in runs.items() if group and all(keep(r) for r in group)}


def versus_reference(summary: pd.DataFrame, reference: str, *, label: str = "label") -> pd.DataFrame:
    """A :func:`summarise` frame with the change of each mean against the row labelled ``reference``."""
    ref = summary.loc[summary[label] == reference, "mean"]
    if ref.empty:
        raise ValueError(f"no row labelled {reference!r}; labels: {list(summary[label])}")
    out = summary.copy()
    out["change vs " + reference] = (out["mean"] - float(ref.iloc[0])).round(2)
    return out


def stage_table(model: str, settings: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Feature-map side and channels after the stem and each stage of ``model``.

    ``settings``: ``(image_size, stem_stride)`` pairs. Columns ``setting``, ``layer``, ``side``,
    ``channels`` (from :func:`convnext_report.complexity.stage_shapes`).
    """
    rows = []
    for size, stride in settings:
        with torch.device("meta"):  # shapes only: no weights, no compute
            net = build_model(model, num_classes=10, stem_stride=stride)
        for layer, (channels, height, _width) in complexity.stage_shapes(net, size):
            rows.append({"setting": f"{size} px, stem stride {stride}", "layer": stage_of(layer),
                         "side": int(height), "channels": int(channels)})
    return pd.DataFrame(rows)


def stage_of(layer: str) -> str:
    """``"stem"``, ``"stage 3"`` ... for a parameter or layer name of a ConvNeXt."""
    parts = layer.split(".")
    if parts[0] == "stem":
        return "stem"
    if parts[0] == "stages" and len(parts) > 1:
        return f"stage {int(parts[1]) + 1}"
    return parts[0]


def throughput(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Training speed per label: images per second and milliseconds per step (mean over epochs and seeds)."""
    rows = []
    for label, group in runs.items():
        for run in group:
            frame = history_frame(run)
            batch = getattr(field_of(run, "config"), "batch_size", float("nan"))
            ips = float(frame["images_per_second"].mean()) if "images_per_second" in frame else float("nan")
            rows.append({"label": label, "images/s": ips, "ms/step": 1000.0 * batch / ips if ips else float("nan")})
    out = pd.DataFrame(rows).groupby("label", sort=False).mean().round(1)
    return out.reset_index()
