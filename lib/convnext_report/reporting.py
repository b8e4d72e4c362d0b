"""Tables for the book: the sources' claims, run folders and chapter records as pandas frames.

Nothing here trains or plots. Chapters hand runs to :func:`runs_frame`, summarise seeds
with :func:`summarise` (mean ± std), and store headline rows (:func:`headline`) in their
chapter record; the status page and the results chapter read those records back
(:func:`load_records`, :func:`status_table`, :func:`results_table`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: label used wherever a number comes from the CPU smoke configuration
SMOKE_LABEL = "CPU smoke configuration — not a result"

# --------------------------------------------------------------------------- the sources' numbers

#: Source 002 (ConvNeXt paper, via "Papers Explained 92"): ImageNet-1K top-1 after each step.
ROADMAP: list[tuple[str, float, str]] = [
    ("ResNet-50 (original recipe)", 76.1, "training"),
    ("modern training recipe", 78.8, "training"),
    ("stage ratio 3:3:9:3", 79.4, "macro"),
    ("patchify stem 4×4/4", 79.5, "macro"),
    ("depthwise conv + width 96", 80.5, "macro"),
    ("inverted bottleneck", 80.6, "macro"),
    ("move depthwise conv up", 79.9, "macro"),
    ("7×7 kernel", 80.6, "macro"),
    ("ReLU → GELU", 80.6, "micro"),
    ("fewer activations", 81.3, "micro"),
    ("fewer norms", 81.4, "micro"),
    ("BatchNorm → LayerNorm", 81.5, "micro"),
    ("separate downsampling", 82.0, "micro"),
]

#: Swin-T's ImageNet-1K top-1 as quoted by source 002 (the target of the roadmap).
SWIN_T_TOP1 = 81.3

#: Every headline number the three sources report, keyed for glue and the results table.
SOURCE_CLAIMS: dict[str, dict[str, Any]] = {
    "000_baseline": dict(source="000", value=82.61, metric="val top-1 (%)",
                         setting="ConvNeXt-T (ImageNet-1K weights), frozen backbone + linear head; "
                                 "Tiny-ImageNet 64 px resized to 224; best epoch of 6 (patience 5)"),
    "000_baseline_val_loss": dict(source="000", value=0.8057, metric="val loss", setting="baseline, best epoch"),
    "000_baseline_train": dict(source="000", value=91.0, metric="train top-1 (%), approx.", setting="baseline"),
    "000_improved": dict(source="000", value=86.30, metric="val top-1 (%)",
                         setting="full fine-tune + self-attention head + RandAugment + dropout 0.2 + wd 5e-4 "
                                 "+ differential LR + AMP; best epoch 7, stopped at 12"),
    "000_improved_train": dict(source="000", value=74.0, metric="train top-1 (%), approx.", setting="improved"),
    "001_test1_base_radam": dict(source="001", value=35.7, metric="top-1 on 1000 val images (%)",
                                 setting="ConvNeXt-V2 base, RAdam lr 1e-3, CIFAR-100 32 px, best of 50 epochs"),
    "001_test2_base_sgd": dict(source="001", value=33.2, metric="top-1 on 1000 val images (%)",
                               setting="base, SGD-Nesterov lr 1e-3, 20 epochs"),
    "001_test2_base_radam": dict(source="001", value=30.0, metric="top-1 on 1000 val images (%)",
                                 setting="base, RAdam lr 1e-3, 20 epochs"),
    "001_test2_base_adamw": dict(source="001", value=29.3, metric="top-1 on 1000 val images (%)",
                                 setting="base, AdamW lr 1e-3, 20 epochs"),
    "001_test3_atto_radam": dict(source="001", value=32.1, metric="top-1 on 1000 val images (%)",
                                 setting="atto, RAdam, 50 epochs"),
    "001_test3_nano_radam": dict(source="001", value=32.6, metric="top-1 on 1000 val images (%)",
                                 setting="nano, RAdam, 50 epochs"),
    "001_test3_base_radam": dict(source="001", value=35.7, metric="top-1 on 1000 val images (%)",
                                 setting="base, RAdam, 50 epochs"),
    "001_test4_tiny_ln": dict(source="001", value=31.8, metric="top-1 on 1000 val images (%)",
                              setting="tiny, RAdam, LayerNorm, 20 epochs"),
    "001_test5_tiny_dyt": dict(source="001", value=31.1, metric="top-1 on 1000 val images (%)",
                               setting="tiny, RAdam, DyT, 20 epochs"),
    "001_recommended_tiny_sgd": dict(source="001", value=34.1, metric="top-1 on 1000 val images (%)",
                                     setting="tiny, SGD-Nesterov (the report's recommendation)"),
    "002_convnext_t": dict(source="002", value=82.0, metric="ImageNet-1K top-1 (%)",
                           setting="ConvNeXt-T at the end of the roadmap, 300 epochs"),
}


def roadmap_frame() -> pd.DataFrame:
    """Source 002's roadmap with the change from the previous step."""
    frame = pd.DataFrame(ROADMAP, columns=["step", "top1", "group"])
    frame["change"] = frame["top1"].diff().round(1)
    return frame


def source_value(key: str) -> float:
    """One number from :data:`SOURCE_CLAIMS` (unknown key: ``KeyError`` listing the keys)."""
    if key not in SOURCE_CLAIMS:
        raise KeyError(f"unknown source claim {key!r}; known: {', '.join(SOURCE_CLAIMS)}")
    return float(SOURCE_CLAIMS[key]["value"])


# --------------------------------------------------------------------------- runs

HISTORY_REQUIRED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


def history_frame(history: Sequence[Mapping[str, Any]] | pd.DataFrame | Any) -> pd.DataFrame:
    """A run's per-epoch history (a ``Run``, its ``history`` list or a frame) as the book shows it.

    The runner writes 0-based epochs and accuracies as fractions (``runner.HISTORY_COLUMNS``);
    the book counts epochs from 1 and gives accuracies in percent.
    """
    if hasattr(history, "history"):
        history = history.history
    frame = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if frame.empty:
        raise ValueError("the run has no finished epoch yet (empty history)")
    missing = [c for c in HISTORY_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"history lacks columns {missing}; columns: {list(frame.columns)}")
    frame["epoch"] = frame["epoch"] + 1
    for col in ("train_acc", "val_acc"):
        frame[col] = 100.0 * frame[col]
    return frame


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, Mapping) and name in obj:
            return obj[name]
        if not isinstance(obj, Mapping) and hasattr(obj, name):
            return getattr(obj, name)
    return default


def run_summary(run: Any, *, label: str | None = None) -> dict[str, Any]:
    """One row for a finished run: best val top-1, its epoch, the train/val gap there, time and device."""
    frame = history_frame(run)
    config = _get(run, "config")
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    best_i = int(frame["val_acc"].idxmax())
    best = frame.loc[best_i]
    record = _get(run, "record", default={}) or {}
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
        "run": str(_get(run, "path", default="")),
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
            config = _get(run, "config")
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


def headline(key: str, runs: Sequence[Any], *, experiment: str, chapter: str, dataset: str | None = None,
             resolution: str | int | None = None, source_key: str | None = None, metric: str = "val top-1 (%)",
             value: str = "best_val_acc", note: str = "") -> dict[str, Any]:
    """A headline row for the chapter record: ``value`` over ``runs`` (seed mean ± std), with context.

    The results chapter tabulates and glues these rows; ``source_key`` names the claim in
    :data:`SOURCE_CLAIMS` it answers. ``dataset``/``resolution`` default to the first run's config.
    """
    first = _get(runs[0], "config") if runs else None
    if dataset is None and first is not None:
        dataset = describe_data(first)
    if resolution is None and first is not None:
        resolution = describe_resolution(first)
    if source_key is not None:
        source_value(source_key)  # fail early on a typo
    frame = runs_frame(list(runs))
    if frame.empty:
        raise ValueError(f"headline {key!r} has no runs")
    values = frame[value].astype(float)
    epochs = f"{int(frame['epochs_run'].min())}–{int(frame['epochs_run'].max())}" \
        if frame["epochs_run"].nunique() > 1 else str(int(frame["epochs_run"].iloc[0]))
    max_epochs = {getattr(_get(r, "config"), "epochs", None) for r in runs} - {None}
    if max_epochs and max(max_epochs) > int(frame["epochs_run"].max()):
        epochs += f" of ≤{max(max_epochs)} (early stopping)"
    return {
        "key": key,
        "experiment": experiment,
        "chapter": chapter,
        "metric": metric,
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else None,
        "n_seeds": int(len(values)),
        "dataset": dataset,
        "resolution": str(resolution),
        "epochs": epochs,
        "minutes": float(frame["minutes"].sum()),
        "gpu_minutes": float(frame["gpu_minutes"].sum()),
        "source_key": source_key,
        "note": note,
    }


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
        config = _get(run, "config")
        return all(getattr(config, k) == v for k, v in where.items())

    return {label: list(group) for label, group in runs.items() if group and all(keep(r) for r in group)}


#: source 001's claims by (model, optimizer, norm) for runs of its own recipe
SOURCE_001_KEYS: dict[tuple[str, str, str], str] = {
    ("convnextv2_base", "radam", "layernorm"): "001_test1_base_radam",
    ("convnextv2_base", "sgd", "layernorm"): "001_test2_base_sgd",
    ("convnextv2_base", "adamw", "layernorm"): "001_test2_base_adamw",
    ("convnextv2_atto", "radam", "layernorm"): "001_test3_atto_radam",
    ("convnextv2_nano", "radam", "layernorm"): "001_test3_nano_radam",
    ("convnextv2_tiny", "radam", "layernorm"): "001_test4_tiny_ln",
    ("convnextv2_tiny", "radam", "dyt"): "001_test5_tiny_dyt",
    ("convnextv2_tiny", "sgd", "layernorm"): "001_recommended_tiny_sgd",
}


def source_001_key(config: Any) -> str | None:
    """The source-001 claim a run of the ``source`` recipe answers (None for other runs)."""
    if (getattr(config, "extra", None) or {}).get("recipe") != "source":
        return None
    return SOURCE_001_KEYS.get((config.model, config.optimizer, config.norm))


def versus_reference(summary: pd.DataFrame, reference: str, *, label: str = "label") -> pd.DataFrame:
    """A :func:`summarise` frame with the change of each mean against the row labelled ``reference``."""
    ref = summary.loc[summary[label] == reference, "mean"]
    if ref.empty:
        raise ValueError(f"no row labelled {reference!r}; labels: {list(summary[label])}")
    out = summary.copy()
    out["change vs " + reference] = (out["mean"] - float(ref.iloc[0])).round(2)
    return out


# --------------------------------------------------------------------------- architecture tables

def stage_table(model: str, settings: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Feature-map side and channels after the stem and each stage of ``model``.

    ``settings``: ``(image_size, stem_stride)`` pairs. Columns ``setting``, ``layer``, ``side``,
    ``channels`` (from :func:`convnext_report.complexity.stage_shapes`).
    """
    import torch

    from convnext_report import complexity
    from convnext_report.models import build_model

    rows = []
    for size, stride in settings:
        with torch.device("meta"):  # shapes only: no weights, no compute
            net = build_model(model, num_classes=10, stem_stride=stride)
        for layer, (channels, height, _width) in complexity.stage_shapes(net, size):
            rows.append({"setting": f"{size} px, stem stride {stride}", "layer": _stage_of(layer),
                         "side": int(height), "channels": int(channels)})
    return pd.DataFrame(rows)


def _stage_of(layer: str) -> str:
    parts = layer.split(".")
    if parts[0] == "stem":
        return "stem"
    if parts[0] == "stages" and len(parts) > 1:
        return f"stage {int(parts[1]) + 1}"
    return parts[0]


def alpha_frame(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """DyT alphas per epoch from the runs' ``dyt_alpha.csv`` (written by ``chapter.AlphaLog``).

    Columns: ``label``, ``seed``, ``epoch``, ``layer``, ``stage``, ``alpha``; empty if no run logged any.
    """
    parts = []
    for label, group in runs.items():
        for run in group:
            file = Path(_get(run, "path")) / "dyt_alpha.csv"
            if file.is_file():
                frame = pd.read_csv(file)
                parts.append(frame.assign(label=label, seed=getattr(_get(run, "config"), "seed", None),
                                          stage=frame["layer"].map(_stage_of)))
    columns = ["label", "seed", "epoch", "layer", "stage", "alpha"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def throughput(runs: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Training speed per label: images per second and milliseconds per step (mean over epochs and seeds)."""
    rows = []
    for label, group in runs.items():
        for run in group:
            frame = history_frame(run)
            batch = getattr(_get(run, "config"), "batch_size", float("nan"))
            ips = float(frame["images_per_second"].mean()) if "images_per_second" in frame else float("nan")
            rows.append({"label": label, "images/s": ips, "ms/step": 1000.0 * batch / ips if ips else float("nan")})
    out = pd.DataFrame(rows).groupby("label", sort=False).mean().round(1)
    return out.reset_index()


# --------------------------------------------------------------------------- chapter records

def load_records(records_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every ``<chapter>.json`` in the records folder (default: :func:`chapter.records_dir`), by name."""
    if records_dir is None:
        from convnext_report.chapter import records_dir as default_dir
        records_dir = default_dir()
    folder = Path(records_dir)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def status_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Where and how each chapter was last executed (the status page)."""
    rows = []
    for r in records:
        env = r.get("environment", {})
        commit = env.get("git_commit") or "—"
        if env.get("git_dirty"):
            commit += " (+ local changes)"
        rows.append({
            "chapter": r.get("title") or r["chapter"],
            "configuration": r.get("configuration", "—"),
            "device": env.get("device", "—"),
            "executed": (r.get("finished_at") or "")[:16].replace("T", " "),
            "minutes": round(float(r.get("minutes", float("nan"))), 1),
            "GPU minutes": round(float(r.get("gpu_minutes", 0.0)), 1),
            "python": env.get("python", "—"),
            "torch": env.get("torch", "—"),
            "timm": env.get("timm", "—"),
            "commit": commit,
        })
    columns = ["chapter", "configuration", "device", "executed", "minutes", "GPU minutes",
               "python", "torch", "timm", "commit"]
    return pd.DataFrame(rows, columns=columns)


def headline_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All headline rows of all records, each carrying its record's configuration and device."""
    rows = []
    for r in records:
        for h in r.get("results", []):
            rows.append({**h, "configuration": r.get("configuration", "full"),
                         "device": r.get("environment", {}).get("device", "—")})
    return rows


def format_headline(row: Mapping[str, Any], *, digits: int = 1) -> str:
    """The number as prose shows it, or the smoke label when it comes from the smoke configuration."""
    if row.get("configuration") == "smoke":
        return SMOKE_LABEL
    unit = " points" if str(row.get("metric", "")).startswith("gap") else " %"
    return mean_std(row["mean"], row.get("std"), row.get("n_seeds"), digits=digits, unit=unit)


def results_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every headline number next to the source's, with its setting, seeds, GPU minutes and device."""
    rows = []
    for h in headline_rows(records):
        claim = SOURCE_CLAIMS.get(h.get("source_key") or "", {})
        rows.append({
            "experiment": h["experiment"],
            "metric": h.get("metric", "val top-1 (%)"),
            "this book": format_headline(h),
            "source": f"{claim['value']:g} (source {claim['source']})" if claim else "—",
            "dataset": h["dataset"],
            "resolution": h["resolution"],
            "epochs": h["epochs"],
            "seeds": h["n_seeds"],
            "GPU minutes": round(h.get("gpu_minutes") or 0.0, 1),
            "device": h["device"],
            "chapter": h["chapter"],
        })
    columns = ["experiment", "metric", "this book", "source", "dataset", "resolution", "epochs", "seeds",
               "GPU minutes", "device", "chapter"]
    return pd.DataFrame(rows, columns=columns)


def find_headline(records: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """The headline row ``key`` (with its record's configuration and device), or None."""
    return next((h for h in headline_rows(records) if h["key"] == key), None)


def compare_with_source(rows: Sequence[Mapping[str, Any] | None], labels: Sequence[str]) -> pd.DataFrame:
    """Headline rows (None: not executed yet) next to the source claim each answers."""
    out = []
    for label, row in zip(labels, rows):
        claim = SOURCE_CLAIMS.get((row or {}).get("source_key") or "", {})
        out.append({
            "configuration": label,
            "this book": format_headline(row) if row else "— (chapter not executed yet)",
            "data (this book)": row["dataset"] if row else "—",
            "source": f"{claim['value']:g} %" if claim else "—",
            "source setting": claim.get("setting", "—"),
        })
    return pd.DataFrame(out).set_index("configuration")


def runs_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every run of every chapter record: where it ran and how long it took."""
    rows = [{"chapter": r["chapter"], "configuration": r.get("configuration"), **run}
            for r in records for run in r.get("runs", [])]
    columns = ["chapter", "configuration", "label", "seed", "dataset", "model", "best_val_acc", "epochs_run",
               "minutes", "gpu_minutes", "device"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=columns) if not frame.empty else pd.DataFrame(columns=columns)


#: glue keys of the results chapter's prose -> the headline key, or ``best:<prefix>`` (best row with that prefix)
GLUE_KEYS: dict[str, str] = {
    "backbone_top1": "backbone_top1",
    "baseline_top1": "baseline_top1",
    "baseline_gap": "baseline_gap",
    "improved_top1": "improved_top1",
    "optim_best_source": "best:opt_source_tiny_imagenet_32_",
    "optim_best_modern": "best:opt_small_image_tiny_imagenet_32_",
    "ln_top1": "norm_source_layernorm",
    "dyt_top1": "norm_source_dyt",
}


def glue_values(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Text for every key in :data:`GLUE_KEYS` plus ``src_<claim>`` for each source claim.

    Missing experiments read "not executed yet"; smoke numbers read as :data:`SMOKE_LABEL`.
    """
    rows = headline_rows(records)
    by_key = {r["key"]: r for r in rows}
    values: dict[str, str] = {}
    for key, rule in GLUE_KEYS.items():
        if rule.startswith("best:"):
            cands = [r for r in rows if r["key"].startswith(rule.removeprefix("best:"))]
            row = max(cands, key=lambda r: r["mean"]) if cands else None
        else:
            row = by_key.get(rule)
        if row is None:
            values[key] = "not executed yet"
            continue
        text = format_headline(row)
        if rule.startswith("best:") and row.get("configuration") != "smoke":
            text += f" ({row['experiment']})"
        values[key] = text
    for claim, info in SOURCE_CLAIMS.items():
        values[f"src_{claim}"] = f"{info['value']:g}" + (" %" if "%" in info["metric"] else "")
    return values


def glue_all(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Glue :func:`glue_values` into the running notebook (myst-nb) and return them."""
    from myst_nb import glue

    values = glue_values(records)
    for key, text in values.items():
        glue(key, text, display=False)
    return values


def versus_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Full-configuration headline rows that answer a source claim: ours and theirs side by side."""
    rows = []
    for h in headline_rows(records):
        if h.get("configuration") == "smoke" or not h.get("source_key"):
            continue
        rows.append({"experiment": h["experiment"], "this book": h["mean"], "std": h.get("std"),
                     "source": SOURCE_CLAIMS[h["source_key"]]["value"]})
    return pd.DataFrame(rows, columns=["experiment", "this book", "std", "source"])
