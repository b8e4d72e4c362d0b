"""The book's explanatory figures: roadmap, feature-map sizes, DyT and GRN (chapter 2's blocks are an SVG file)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..figures import COLORS, subplots

__all__ = ["plot_dyt", "plot_grn", "plot_roadmap", "plot_stage_sizes"]


def plot_roadmap(roadmap: pd.DataFrame, *, reference: Mapping[str, float] | None = None) -> Figure:
    """The paper's modernisation steps (:func:`.claims.roadmap_frame`) as bars coloured by design level."""
    fig, [[ax]] = subplots(height=0.36 * len(roadmap) + 1.9)
    y, top1, groups = np.arange(len(roadmap))[::-1], roadmap.iloc[:, 1], roadmap.iloc[:, 2]
    ax.barh(y, top1, color=[COLORS.get(g, COLORS["other"]) for g in groups], height=0.7)
    for yi, v in zip(y, top1):
        ax.text(v + 0.05, yi, f"{v:.1f}", va="center")
    for name, level in (reference or {}).items():
        ax.axvline(level, color=COLORS["reference"], ls="--", lw=1.2)
        ax.text(level, len(roadmap) - 0.5, f"{name} {level:.1f} ", color=COLORS["reference"], ha="right")
    ax.set_yticks(y, roadmap["step"])
    ax.set_xlim(float(top1.min()) - 1.0, float(top1.max()) + 0.8)
    ax.set_xlabel("ImageNet-1K top-1 (%), as the paper reports it")
    groups = list(dict.fromkeys(groups))
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=COLORS[g]) for g in groups], groups, loc="upper center",
              bbox_to_anchor=(0.4, -0.1), ncol=len(groups), title="design level", frameon=False)
    fig.tight_layout()
    return fig


def plot_stage_sizes(frame: pd.DataFrame) -> Figure:
    """Feature-map side after the stem and each stage (:func:`.tables.stage_table`); equal sides share a line."""
    layers = list(dict.fromkeys(frame["layer"]))
    lines: dict[tuple, list[str]] = {}
    for name, group in frame.groupby("setting", sort=False):
        lines.setdefault(tuple(group.set_index("layer").reindex(layers)["side"]), []).append(name)
    fig, [[ax]] = subplots(height=4.0)
    for i, (sides, names) in enumerate(lines.items()):
        ax.plot(range(len(layers)), sides, marker="osD^v"[i % 5], color=sns.color_palette("deep")[i % 10],
                label=" = ".join(names))
    ax.set_yscale("log", base=2)
    ax.set_yticks([1, 2, 4, 8, 16, 32, 64], ["1", "2", "4", "8", "16", "32", "64"])
    ax.axhline(1, color=COLORS["wrong"], lw=1, ls=":")
    ax.set_xticks(range(len(layers)), layers)
    ax.set_ylabel("feature-map side (pixels)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_dyt(alphas: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), *, x_max: float = 6.0) -> Figure:
    """DyT's squashing ``tanh(alpha * x)`` for several alpha, next to the identity it replaces."""
    x = np.linspace(-x_max, x_max, 401)
    fig, [[ax]] = subplots(height=3.8)
    for color, a in zip(sns.color_palette("viridis", len(alphas)), alphas):
        ax.plot(x, np.tanh(a * x), color=color, label=f"α = {a:g}")
    ax.plot(x, np.clip(x, -1.5, 1.5), color=COLORS["reference"], ls=":", lw=1, label="identity (clipped)")
    ax.set_xlabel("x (pre-normalisation activation)")
    ax.set_ylabel("tanh(α x)")
    ax.set_ylim(-1.6, 1.6)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_grn(before: np.ndarray, after: np.ndarray) -> Figure:
    """Per-channel global response (L2 norm over H×W) before and after GRN, channels sorted by response."""
    order = np.argsort(before)[::-1]
    fig, [[left, right]] = subplots(1, 2, height=3.4)
    channels = np.arange(len(before))
    left.bar(channels, after[order], color=COLORS["selection"], label="after GRN")
    left.bar(channels, before[order], color=COLORS["train"], label="input")
    left.set_xlabel("channel, by input response")
    left.set_ylabel("‖X_c‖₂ over H×W")
    left.legend()
    right.scatter(before[order] / before.mean(), after[order] / before[order], s=14, color=COLORS["training"])
    right.set_xlabel("N_c = ‖X_c‖ / mean ‖X‖")
    right.set_ylabel("gain ‖GRN(X)_c‖ / ‖X_c‖")
    fig.tight_layout()
    return fig
