"""The Performance appendix: the throughput benchmark's committed rows as tables and figures.

``benchmarks/throughput.py`` writes one JSON list of rows per device into ``benchmarks/results/``;
this module reads them back and nothing else. GPU rows win: CPU rows are shown only while no GPU
row exists, and then every table and figure says they are CPU numbers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..figures import COLORS, subplots
from .banners import admonition, markdown
from .plan import read_benchmarks

__all__ = [
    "MODES", "TARGETS", "benchmark_banner", "epoch_cost", "load_rows", "measured_rows", "packed_table",
    "plot_packed", "plot_throughput", "targets_table", "throughput_table",
]

MODES = ("ours-real", "ours-synthetic", "eager-reference")
_COLOURS = {"ours-real": COLORS["train"], "ours-synthetic": COLORS["micro"], "eager-reference": COLORS["reference"]}
#: the issue's done-when targets: (what, numerator (model, mode), denominator (model, mode), at least)
TARGETS: tuple[tuple[str, tuple[str, str], tuple[str, str], float], ...] = (
    ("ours-synthetic ÷ eager-reference, atto @ 32 px", ("convnextv2_atto", "ours-synthetic"),
     ("convnextv2_atto", "eager-reference"), 1.5),
    ("ours-synthetic ÷ eager-reference, convnext_tiny @ 224 px", ("convnext_tiny", "ours-synthetic"),
     ("convnext_tiny", "eager-reference"), 1.2),
    ("packed-4 ÷ packed-1 (aggregate), atto", ("convnextv2_atto", "packed-4"), ("convnextv2_atto", "packed-1"), 2.0),
)
REAL_OVER_SYNTHETIC = 0.9  #: ours-real must keep this share of ours-synthetic, for every model


def load_rows(folder: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every benchmark row of ``folder`` (default ``benchmarks/results``; :func:`.plan.read_benchmarks`), one frame."""
    frame = pd.DataFrame(read_benchmarks(folder))
    if frame.empty:
        return pd.DataFrame(columns=["model", "mode", "device", "device_type", "images_per_second"])
    if "device_type" not in frame:
        frame["device_type"] = None
    guess = np.where(frame["device"].str.startswith("CPU"), "cpu", "cuda")
    frame["device_type"] = frame["device_type"].fillna(pd.Series(guess, index=frame.index))
    return frame


def measured_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows to show: the GPU measured most recently if there is one, else the CPU rows; one row per
    model and mode (the latest). ``frame.attrs["kind"]`` is ``"gpu"``, ``"cpu"`` or ``"none"``."""
    if frame.empty:
        out = frame.copy()
        out.attrs["kind"] = "none"
        return out
    gpu = frame[frame["device_type"] == "cuda"]
    pool = gpu if not gpu.empty else frame[frame["device_type"] == "cpu"]
    pool = pool.sort_values("measured_at") if "measured_at" in pool else pool
    device = pool["device"].iloc[-1]
    out = pool[pool["device"] == device].drop_duplicates(["model", "mode"], keep="last").reset_index(drop=True)
    out.attrs["kind"] = "gpu" if not gpu.empty else "cpu"
    return out


def benchmark_banner(rows: pd.DataFrame) -> Any:
    """A MyST admonition: where the rows were measured, and that CPU rows are not GPU results."""
    kind = rows.attrs.get("kind", "none")
    if kind == "none":
        body = ("No benchmark rows are committed yet: run `PYTHONPATH=lib python3 benchmarks/throughput.py` "
                "(see benchmarks/README.md) and execute this page again.")
        return markdown(admonition("No measurements yet", body))
    first = rows.iloc[0]
    when = str(rows["measured_at"].max())[:10] if "measured_at" in rows else "an unknown date"
    where = (f"**{first['device']}** on {when} (torch {first['torch']}, commit "
             f"`{str(first.get('git_commit') or 'unknown')[:10]}`)")
    if kind == "cpu":
        body = (f"Measured on CPU; GPU rows will replace these. Every number below was measured on {where} with "
                "the benchmark's tiny settings (batch sizes of a few images, a few steps), to show that every "
                "code path runs and how the page reads; CPU throughput says nothing about a GPU, and a shared "
                "CPU's matmul peak (the MFU's denominator) moves with the load. Run the benchmark on a GPU to "
                "replace them.")
        return markdown(admonition("Measured on CPU — not GPU results", body))
    return markdown(f"```{{note}}\nMeasured on {where}; MFU against the bf16 matmul peak measured in the same "
                     "process.\n```")


def _value(rows: pd.DataFrame, model: str, mode: str, column: str = "images_per_second") -> float:
    hit = rows[(rows["model"] == model) & (rows["mode"] == mode)]
    return float(hit[column].iloc[0]) if not hit.empty and pd.notna(hit[column].iloc[0]) else float("nan")


def _models(rows: pd.DataFrame) -> list[str]:
    single = rows[~rows["mode"].str.startswith("packed-")]
    return list(dict.fromkeys(single.sort_values(["image_size", "flops_per_image"])["model"])) \
        if {"image_size", "flops_per_image"} <= set(single) else list(dict.fromkeys(single["model"]))


def throughput_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model setting: images/s of the three modes, their ratios, TFLOP/s, MFU and memory
    of ``ours-real``, and the compile time (first step of ``ours-synthetic``)."""
    out = []
    for model in _models(rows):
        mine = rows[(rows["model"] == model) & rows["mode"].isin(MODES)].iloc[0]
        real, synthetic, eager = (_value(rows, model, m) for m in MODES)
        out.append({
            "model": model, "image px": int(mine["image_size"]), "stem stride": int(mine["stem_stride"]),
            "batch": int(mine["batch_size"]), "ours-real img/s": real, "ours-synthetic img/s": synthetic,
            "eager-reference img/s": eager, "synthetic ÷ eager": synthetic / eager, "real ÷ synthetic": real / synthetic,
            "TFLOP/s (real)": _value(rows, model, "ours-real", "tflops"),
            "MFU (real)": _value(rows, model, "ours-real", "mfu"),
            "peak GB (real)": _value(rows, model, "ours-real", "peak_memory_gb"),
            "compile s": _value(rows, model, "ours-synthetic", "first_step_seconds"),
        })
    return pd.DataFrame(out).set_index("model").round(3) if out else pd.DataFrame()


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.axes[0]
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11)
    return fig


def _device_note(rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    return f"{rows['device'].iloc[0]}" + (" — CPU, tiny settings: not GPU results" if rows.attrs.get("kind") == "cpu"
                                          else "")


def plot_throughput(rows: pd.DataFrame) -> Figure:
    """Images per second per model: ours on real data, ours on device-resident data, the eager loop."""
    models = _models(rows)
    fig, axes = subplots(size=(9.0, 0.9 * max(len(models), 2) + 1.6))
    if not models:
        return _empty(fig, "No benchmark rows yet.")
    ax = axes[0, 0]
    y = np.arange(len(models))[::-1]
    for i, mode in enumerate(MODES):
        values = [_value(rows, m, mode) for m in models]
        ax.barh(y + (1 - i) * 0.27, values, height=0.26, color=_COLOURS[mode], label=mode)
    labels = [f"{m}\n{int(rows[rows['model'] == m]['image_size'].iloc[0])} px" for m in models]
    ax.set_yticks(y, labels)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images per second (log scale)")
    ax.set_title(_device_note(rows), fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def packed_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Packed sweeps: K processes, their summed images/s, per process, and the gain over K = 1."""
    packed = rows[rows["mode"].str.startswith("packed-")].copy()
    if packed.empty:
        return pd.DataFrame()
    packed["K"] = packed["mode"].str.removeprefix("packed-").astype(int)
    packed = packed.sort_values("K")
    one = packed[packed["K"] == 1]["images_per_second"]
    base = float(one.iloc[0]) if not one.empty else float("nan")
    return pd.DataFrame({
        "K": packed["K"].to_numpy(), "model": packed["model"].to_numpy(), "batch": packed["batch_size"].to_numpy(),
        "aggregate img/s": packed["images_per_second"].to_numpy(),
        "per process img/s": (packed["images_per_second"] / packed["K"]).to_numpy(),
        "× K = 1": (packed["images_per_second"] / base).to_numpy(),
    }).set_index("K").round(2)


def plot_packed(rows: pd.DataFrame) -> Figure:
    """Aggregate images/s of K processes at once, against K times one process."""
    table = packed_table(rows)
    fig, axes = subplots(size=(6.5, 3.8))
    if table.empty:
        return _empty(fig, "No packed-sweep rows yet.")
    ax = axes[0, 0]
    ks = table.index.to_numpy()
    ax.plot(ks, table["aggregate img/s"], "o-", color=COLORS["train"], label="measured (sum of processes)")
    if 1 in table.index:
        ax.plot(ks, ks * table.loc[1, "aggregate img/s"], "--", color=COLORS["reference"], label="K × one process")
    ax.set_xticks(ks)
    ax.set_xlabel("processes training at once (K)")
    ax.set_ylabel("images per second, all processes")
    ax.set_title(_device_note(rows), fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def epoch_cost(rows: pd.DataFrame, *, train_images: int, epochs: int) -> pd.DataFrame:
    """Seconds per epoch of ``train_images`` images, and minutes per run of ``epochs`` epochs, per model
    (training only: evaluation and compile come on top), for our loop and for the eager loop."""
    out = []
    for model in _models(rows):
        real, eager = _value(rows, model, "ours-real"), _value(rows, model, "eager-reference")
        out.append({"model": model, "ours-real img/s": real, "s / epoch (ours-real)": train_images / real,
                    f"min / {epochs} epochs (ours-real)": train_images * epochs / real / 60,
                    "s / epoch (eager loop)": train_images / eager})
    return pd.DataFrame(out).set_index("model").round(1) if out else pd.DataFrame()


def targets_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The done-when targets: measured ratio, the required minimum, met or not (or not measured)."""
    checks = [(what, _value(rows, *num) / _value(rows, *den), need) for what, num, den, need in TARGETS]
    checks += [(f"ours-real ÷ ours-synthetic, {m}", _value(rows, m, "ours-real") / _value(rows, m, "ours-synthetic"),
                REAL_OVER_SYNTHETIC) for m in _models(rows)]
    cpu = rows.attrs.get("kind") == "cpu"
    out = [{"target": what, "measured": round(value, 3) if np.isfinite(value) else None, "at least": need,
            "met": "not measured" if not np.isfinite(value) else ("yes" if value >= need else "no")
            + (" (CPU: not the target's device)" if cpu else "")} for what, value, need in checks]
    return pd.DataFrame(out).set_index("target")
