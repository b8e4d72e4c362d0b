"""Tables of runs for the book, and the one way every page shows a table (:func:`show`): MyST Markdown with
readable headers and units, no index, "—" for a missing value, cells that wrap. Nothing here trains or plots."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import complexity
from ..models import build_model
from ..selection import history_frame

__all__ = ["Markdown", "Table", "alpha_frame", "curves_frame", "run_summary", "runs_frame", "show", "stage_table",
           "summarise"]

#: readable headers, with units, for the columns the pages show (others: ``_`` becomes a space)
_HEADERS = {
    "label": "run", "top1": "test top-1 (%)", "top5": "test top-5 (%)", "selection_top1": "held-out top-1 (%)",
    "train_top1": "train top-1 (%)", "gap": "train − test (points)", "peeked_top1": "best test top-1 over epochs (%)",
    "selected_epoch": "selected epoch", "epochs_run": "epochs run", "minutes": "minutes",
    "gpu_minutes": "GPU minutes", "n": "seeds", "mean": "test top-1 (%), mean", "std": "std (points)",
    "params_M": "parameters (M)", "stem_stride": "stem stride", "image_size": "image (px)",
    "images_per_second": "training images/s", "device": "trained on", "batch_size": "batch",
    "ours-real": "ours, real data (images/s)", "ours-synthetic": "ours, synthetic data (images/s)",
    "eager-reference": "plain eager loop (images/s)",
}
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|#])")


class Markdown:
    """A cell's text that is already MyST Markdown (a link, code): :func:`show` does not escape it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _header(name: Any) -> str:
    name = str(name)
    stat = re.fullmatch(r"(.+)_(mean|std)", name)
    if stat and stat[1] in _HEADERS:
        return f"{_HEADERS[stat[1]]}, {stat[2]}"
    macs = re.fullmatch(r"GMACs_(\d+)", name)
    return f"GMACs at {macs.group(1)} px" if macs else _HEADERS.get(name, name.replace("_", " "))


def _cell(value: Any, digits: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, Markdown):
        return value.text.replace("|", "\\|")
    if isinstance(value, float):
        text = f"{value:g}" if digits is None else f"{value:.{digits}f}"
        return f"{value:.2g}" if value and float(text) == 0 else text
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(value).replace("\n", " "))


class Table:
    """A table as a page shows it: ``_repr_markdown_`` (MyST, rendered by the book) and plain text."""

    def __init__(self, frame: pd.DataFrame, digits: int | None = 1) -> None:
        self.frame, self.digits = frame, digits

    def _repr_markdown_(self) -> str:
        cells = [[_cell(v, self.digits) for v in row] for row in self.frame.itertuples(index=False)]
        numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in self.frame.dtypes]
        lines = ["| " + " | ".join(_cell(_header(c), 0) for c in self.frame.columns) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])

    def __repr__(self) -> str:
        return self.frame.rename(columns=_header).to_string(index=False, na_rep="—")


def show(data: pd.DataFrame | Mapping[str, Any], columns: Sequence[str] | None = None, *,
         digits: int | None = 1) -> Table:
    """``data`` as a page shows it: a frame's ``columns`` (a named index first), or a mapping's keys as "setting"
    and "value"; floats with ``digits`` decimals (None: as short as exact)."""
    if isinstance(data, Mapping):
        keys = columns or list(data)
        return Table(pd.DataFrame({"setting": keys, "value": [data[k] for k in keys]}), digits)
    frame = data if isinstance(data.index, pd.RangeIndex) else data.reset_index()
    return Table(frame[list(columns)] if columns is not None else frame, digits)


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


def curves_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Long per-epoch frame (``label``, ``seed``, ``epoch``, metrics) for :func:`figures.plot_curves`."""
    return pd.concat([history_frame(run).assign(label=label, seed=run.config.seed)
                      for label, group in runs.items() for run in group], ignore_index=True)


def summarise(frame: pd.DataFrame, by: str | Sequence[str] = "label", metrics: Sequence[str] = ("top1",)) -> pd.DataFrame:
    """Seed mean, std (ddof=1) and count ``n`` per group; several metrics: ``<metric>_mean``, ``<metric>_std``."""
    grouped = frame.groupby([by] if isinstance(by, str) else list(by), sort=False)
    stats = {f"{m}_{s}" if len(metrics) > 1 else s: (m, s) for m in metrics for s in ("mean", "std")}
    return grouped.agg(n=(metrics[0], "count"), **stats, gpu_minutes=("gpu_minutes", "sum")).reset_index()


def stage_table(model: str, settings: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Feature-map ``side`` and ``channels`` after each ``layer`` of ``model``, per ``(image_size, stem_stride)``."""
    rows = []
    for size, stride in settings:
        with torch.device("meta"):  # shapes only: no weights, no compute
            net = build_model(model, num_classes=10, stem_stride=stride)
        rows += [{"setting": f"{size} px, stem stride {stride}", "layer": _stage_of(layer), "side": int(height),
                  "channels": int(channels)} for layer, (channels, height, _) in complexity.stage_shapes(net, size)]
    return pd.DataFrame(rows)


def _stage_of(layer: str) -> str:
    """``"stem"``, ``"stage 3"`` ... for a parameter or layer name of a ConvNeXt."""
    parts = layer.split(".")
    return f"stage {int(parts[1]) + 1}" if parts[0] == "stages" and len(parts) > 1 else parts[0]


def alpha_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """DyT alphas per epoch and layer from the runs' ``dyt_alpha.csv`` (empty if no run logged any)."""
    parts = [pd.read_csv(Path(run.path) / "dyt_alpha.csv").assign(label=label, seed=run.config.seed)
             for label, group in runs.items() for run in group if (Path(run.path) / "dyt_alpha.csv").is_file()]
    columns = ["label", "seed", "epoch", "layer", "stage", "alpha"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame.assign(stage=frame["layer"].map(_stage_of))[columns]
