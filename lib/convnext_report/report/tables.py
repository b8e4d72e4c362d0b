"""Tables of runs for the book: one row per run (:func:`runs_frame`), seed means ± std (:func:`summarise`),
pivots and per-stage shapes. Nothing here trains or plots."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import complexity
from ..selection import history_frame
from ..models import build_model

__all__ = ["HEADERS", "alpha_frame", "curves_frame", "mean_std", "peeking", "pivot_mean_std", "run_summary",
           "runs_frame", "select", "show", "stage_of", "stage_table", "summarise", "summary_line", "throughput",
           "versus_reference"]


def run_summary(run: Any, *, label: str | None = None) -> dict[str, Any]:
    """One row for a finished run (accuracies in %).

    ``top1``/``top5`` are the reported (test) split at the selected epoch, the number every table and
    headline uses; ``selection_top1`` is the selection split there (held-out training images, or the test
    split itself under ``selection="test"``); ``peeked_top1`` is the best test top-1 over all epochs
    (what selecting on the test split would report; NaN unless it was evaluated every epoch);
    ``gap`` is training minus test accuracy at the selected epoch.
    """
    frame, cfg, record = history_frame(run), run.config.to_dict(), run.record or {}
    best = frame.loc[int(frame["selection_acc"].idxmax())]
    top1 = _percent(record.get("final_top1"), fallback=float(best["selection_acc"]))
    seconds = record.get("wall_time_seconds")
    if seconds is None and "seconds" in frame.columns:
        seconds = float(frame["seconds"].sum())
    on_gpu = str(record.get("device", "")).startswith("cuda")
    minutes = float(seconds) / 60.0 if seconds is not None else float("nan")
    return {
        "label": label or cfg.get("extra", {}).get("label") or cfg.get("run_name") or cfg.get("model"),
        "seed": cfg.get("seed"), "model": cfg.get("model"), "dataset": cfg.get("dataset"),
        "image_size": cfg.get("image_size"), "optimizer": cfg.get("optimizer"), "norm": cfg.get("norm"),
        "stem_stride": cfg.get("stem_stride"), "recipe": (cfg.get("extra") or {}).get("recipe"),
        "selection": cfg.get("selection", "test"),
        "top1": top1, "top5": _percent(record.get("final_top5")),
        "selected_epoch": int(best["epoch"]), "epochs_run": int(frame["epoch"].max()),
        "selection_top1": float(best["selection_acc"]), "train_top1": float(best["train_acc"]),
        "gap": float(best["train_acc"]) - top1, "peeked_top1": _percent(record.get("peeked_top1")),
        "ema_top1": _percent(record.get("ema_final_top1")),
        "minutes": minutes, "gpu_minutes": minutes if on_gpu else 0.0,
        "device": str(record.get("device_name") or record.get("device") or cfg.get("device", "")),
        "trained": str(record.get("end_time") or "")[:10],
        "run": Path(str(run.path)).name,
    }


def summary_line(run: Any, *, source: str) -> str:
    """One line about a run for a chapter's output: its number, its selected epoch, where it came from."""
    row = run_summary(run)
    chosen = "held-out training images" if row["selection"] == "holdout" else "the test split"
    where = (f"trained here in {row['minutes']:.1f} min" if source == "trained"
             else f"from the result store (trained on {row['device']}, {row['trained'] or 'date unknown'})")
    return (f"{row['label']} (seed {row['seed']}): test top-1 {row['top1']:.2f} % at epoch {row['selected_epoch']} "
            f"of {row['epochs_run']} (selected on {chosen}); {where}")


def _percent(fraction: float | None, fallback: float = math.nan) -> float:
    return fallback if fraction is None else 100.0 * float(fraction)


#: readable headers for :func:`run_summary`'s columns (:func:`show`)
HEADERS = {
    "label": "run", "seed": "seed", "top1": "test top-1 (%)", "top5": "test top-5 (%)",
    "selection_top1": "selection top-1 (%)", "train_top1": "train top-1 (%)", "gap": "train − test (points)",
    "peeked_top1": "best test top-1 over epochs (%)", "ema_top1": "EMA test top-1 (%)",
    "selected_epoch": "selected epoch", "epochs_run": "epochs run", "minutes": "minutes",
    "gpu_minutes": "GPU minutes", "device": "device", "trained": "trained on", "mean": "mean", "std": "std",
    "n": "seeds",
}


def show(frame: pd.DataFrame, columns: Sequence[str], *, digits: int = 2) -> pd.DataFrame:
    """``frame[columns]`` rounded, with readable headers (:data:`HEADERS`; ``x_mean`` -> "x (mean)")."""
    def header(name: str) -> str:
        for suffix in ("_mean", "_std"):
            if name.endswith(suffix) and name[: -len(suffix)] in HEADERS:
                return f"{HEADERS[name[: -len(suffix)]]}, {suffix[1:]}"
        return HEADERS.get(name, name.replace("_", " "))

    return frame[list(columns)].round(digits).rename(columns=header)


def runs_frame(runs: Iterable[Any] | Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """One row per run (see :func:`run_summary`); a mapping ``label -> runs`` sets the labels."""
    if isinstance(runs, Mapping):
        rows = [run_summary(r, label=label) for label, group in runs.items() for r in group]
    else:
        rows = [run_summary(r) for r in runs]
    return pd.DataFrame(rows)


def curves_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Long per-epoch frame (``label``, ``seed``, ``epoch``, metrics) for :func:`figures.plot_curves`."""
    return pd.concat([history_frame(run).assign(label=label, seed=run.config.seed)
                      for label, group in runs.items() for run in group], ignore_index=True)


def summarise(frame: pd.DataFrame, by: str | Sequence[str] = "label",
              metrics: Sequence[str] = ("top1",)) -> pd.DataFrame:
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


def peeking(frame: pd.DataFrame, by: str | Sequence[str] = "label") -> pd.DataFrame:
    """What selecting the epoch on the split one reports would show, next to the honest number (seed means).

    ``top1`` is the test split at the epoch the held-out images chose; ``peeked_top1`` the best test
    top-1 over all epochs (the runs must have evaluated the test split every epoch); ``selection_top1``
    the best held-out top-1 itself, which is what a report of "the best epoch on our held-out images"
    (source 001's protocol) states.
    """
    grouped = frame.groupby([by] if isinstance(by, str) else list(by), sort=False)
    out = pd.DataFrame({"test top-1, epoch chosen on held-out images (%)": grouped["top1"].mean(),
                        "best test top-1 over the epochs (%)": grouped["peeked_top1"].mean(),
                        "best held-out top-1 over the epochs (%)": grouped["selection_top1"].mean()})
    out["what peeking adds (points)"] = out.iloc[:, 1] - out.iloc[:, 0]
    out["seeds"] = grouped["top1"].count()
    return out.round(2).reset_index()


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
        return all(getattr(run.config, k) == v for k, v in where.items())

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
            batch = run.config.batch_size
            ips = float(frame["images_per_second"].mean()) if "images_per_second" in frame else float("nan")
            rows.append({"label": label, "images/s": ips, "ms/step": 1000.0 * batch / ips if ips else float("nan")})
    out = pd.DataFrame(rows).groupby("label", sort=False).mean().round(1)
    return out.reset_index()


def alpha_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """DyT alphas per epoch from the runs' ``dyt_alpha.csv`` (the training loop writes it for DyT models).

    Columns: ``label``, ``seed``, ``epoch``, ``layer``, ``stage``, ``alpha``; empty if no run logged any.
    """
    parts = []
    for label, group in runs.items():
        for run in group:
            file = Path(run.path) / "dyt_alpha.csv"
            if file.is_file():
                frame = pd.read_csv(file)
                parts.append(frame.assign(label=label, seed=run.config.seed,
                                          stage=frame["layer"].map(stage_of)))
    columns = ["label", "seed", "epoch", "layer", "stage", "alpha"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
