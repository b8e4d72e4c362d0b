"""The Performance appendix: the committed rows of ``benchmarks/throughput.py`` as a table and a figure."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..figures import COLORS, subplots
from .chapter import admonition, markdown
from .plan import read_benchmarks

__all__ = ["MODES", "benchmark_banner", "load_rows", "measured_rows", "plot_throughput", "throughput"]

MODES = ("ours-real", "ours-synthetic", "eager-reference")
_COLOURS = {"ours-real": COLORS["train"], "ours-synthetic": COLORS["micro"], "eager-reference": COLORS["reference"]}


def load_rows(folder: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every benchmark row of ``folder`` (default ``benchmarks/results``; :func:`.plan.read_benchmarks`), one frame."""
    frame = pd.DataFrame(read_benchmarks(folder))
    empty = pd.DataFrame(columns=["model", "mode", "device", "device_type", "images_per_second"])
    return empty if frame.empty else frame


def measured_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest row per model and mode of the latest GPU, else of the CPU; ``attrs["kind"]``: gpu, cpu or none."""
    gpu = frame[frame["device_type"] == "cuda"]
    pool = gpu if not gpu.empty else frame[frame["device_type"] == "cpu"]
    pool = pool.sort_values("measured_at") if "measured_at" in pool else pool
    out = pool[pool["device"] == pool["device"].iloc[-1]] if not pool.empty else pool
    out = out.drop_duplicates(["model", "mode"], keep="last").reset_index(drop=True)
    out.attrs["kind"] = "none" if frame.empty else "gpu" if not gpu.empty else "cpu"
    return out


def benchmark_banner(rows: pd.DataFrame) -> Any:
    """A MyST admonition: where the rows were measured, and that CPU rows are not GPU results."""
    if rows.attrs.get("kind", "none") == "none":
        return markdown(admonition("No measurements yet", "No benchmark rows are committed yet: run "
                                   "`PYTHONPATH=lib python3 benchmarks/throughput.py` (see benchmarks/README.md) and "
                                   "execute this page again."))
    first = rows.iloc[0]
    when = str(rows["measured_at"].max())[:10] if "measured_at" in rows else "an unknown date"
    where = f"**{first['device']}** on {when} (torch {first['torch']}, commit `{str(first.get('git_commit'))[:10]}`)"
    if rows.attrs["kind"] == "cpu":
        return markdown(admonition("Measured on CPU — not GPU results", (
            f"Measured on CPU; GPU rows will replace these. Every number below was measured on {where} with the "
            "benchmark's tiny settings (a few images per step, a few steps), to show that every code path runs and "
            "how the page reads; CPU throughput says nothing about a GPU.")))
    return markdown(admonition("Measured on a GPU", f"Measured on {where}; MFU against the bf16 matmul peak "
                               "measured in the same process.", "note"))


def throughput(rows: pd.DataFrame) -> pd.DataFrame:
    """Training images/s per model setting (fewest FLOPs first) and mode; synthetic ÷ eager, real ÷ synthetic."""
    single = rows[rows["mode"].isin(MODES)]
    if single.empty:
        return pd.DataFrame(columns=["model", "image_size", "batch_size", *MODES])
    if "flops_per_image" in single:
        single = single.sort_values(["image_size", "flops_per_image"])
    table = single.pivot_table(index=["model", "image_size", "batch_size"], columns="mode", values="images_per_second",
                               sort=False).reindex(columns=list(MODES)).reset_index().rename_axis(columns=None)
    return table.assign(**{"synthetic ÷ eager": table["ours-synthetic"] / table["eager-reference"],
                           "real ÷ synthetic": table["ours-real"] / table["ours-synthetic"]})


def plot_throughput(table: pd.DataFrame) -> Figure:
    """Images per second per model and mode (a :func:`throughput` table), log scale."""
    fig, [[ax]] = subplots(height=0.75 * max(len(table), 2) + 1.4)
    if table.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No benchmark rows yet.", ha="center", va="center")
        return fig
    y = np.arange(len(table))[::-1]
    for i, mode in enumerate(MODES):
        ax.barh(y + (1 - i) * 0.27, table[mode], height=0.26, color=_COLOURS[mode], label=mode)
    ax.set_yticks(y, [f"{m}\n{s} px" for m, s in zip(table["model"], table["image_size"])])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images per second (log scale)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
