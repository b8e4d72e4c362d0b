"""The book's explanatory figures: the roadmap, block diagrams, feature-map sizes, DyT and GRN,
and our results against the sources'. Same style as :mod:`convnext_report.figures`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..figures import COLORS, subplots

__all__ = ["BLOCKS", "plot_blocks", "plot_dyt", "plot_grn", "plot_roadmap", "plot_stage_sizes", "plot_versus_source"]


def plot_roadmap(roadmap: pd.DataFrame, *, reference: Mapping[str, float] | None = None) -> Figure:
    """The paper's modernisation steps (ImageNet-1K top-1) as horizontal bars coloured by design group.

    ``roadmap``: columns ``step``, ``top1`` and ``group`` (``training``/``macro``/``micro``).
    """
    fig, axes = subplots(size=(9.0, 0.42 * len(roadmap) + 1.2))
    ax = axes[0, 0]
    y = np.arange(len(roadmap))[::-1]
    colors = [COLORS.get(g, COLORS["other"]) for g in roadmap["group"]]
    ax.barh(y, roadmap["top1"], color=colors, height=0.7)
    for yi, v in zip(y, roadmap["top1"]):
        ax.text(v + 0.05, yi, f"{v:.1f}", va="center", fontsize=9)
    for k, (name, level) in enumerate((reference or {}).items()):
        ax.axvline(level, color=COLORS["reference"], ls="--", lw=1.2)
        ax.text(level, len(roadmap) - 0.35, f" {name} {level:.1f}", color=COLORS["reference"], fontsize=9)
    ax.set_yticks(y, roadmap["step"])
    lo, hi = float(roadmap["top1"].min()), float(roadmap["top1"].max())
    ax.set_xlim(lo - 1.0, hi + 0.8)
    ax.set_xlabel("ImageNet-1K top-1 (%), as reported by the paper")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[g]) for g in dict.fromkeys(roadmap["group"])]
    ax.legend(handles, list(dict.fromkeys(roadmap["group"])), loc="upper right",
              bbox_to_anchor=(1.0, 0.94), title="design level", framealpha=1.0)
    fig.tight_layout()
    return fig


#: (label, kind) per layer, top to bottom; "+" marks the residual add
BLOCKS: dict[str, list[tuple[str, str]]] = {
    "ResNet-50 bottleneck": [
        ("1×1 conv, 256→64", "conv"), ("BatchNorm, ReLU", "norm"), ("3×3 conv, 64→64", "conv"),
        ("BatchNorm, ReLU", "norm"), ("1×1 conv, 64→256", "conv"), ("BatchNorm", "norm"), ("+", "add"),
        ("ReLU", "act"),
    ],
    "ConvNeXt block (V1)": [
        ("7×7 depthwise conv, 96", "conv"), ("LayerNorm", "norm"), ("1×1 conv, 96→384", "conv"),
        ("GELU", "act"), ("1×1 conv, 384→96", "conv"), ("LayerScale γ", "other"), ("+", "add"),
    ],
    "ConvNeXt V2 block": [
        ("7×7 depthwise conv, 96", "conv"), ("LayerNorm (or DyT)", "norm"), ("1×1 conv, 96→384", "conv"),
        ("GELU", "act"), ("GRN", "norm"), ("1×1 conv, 384→96", "conv"), ("+", "add"),
    ],
}


def plot_blocks(blocks: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> Figure:
    """Block diagrams side by side (ResNet bottleneck, ConvNeXt, ConvNeXt V2), drawn with patches."""
    blocks = blocks or BLOCKS
    fig, axes = subplots(1, len(blocks), size=(3.6 * len(blocks), 6.0))
    for ax, (name, layers) in zip(axes.flat, blocks.items()):
        ax.set_xlim(0, 10)
        ax.set_ylim(-0.5, len(layers) + 1.2)
        ax.axis("off")
        ax.set_title(name, fontsize=11)
        top = len(layers) + 0.5
        ax.annotate("", xy=(5, top - 0.25), xytext=(5, top + 0.45),
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1))
        add_y = None
        for i, (label, kind) in enumerate(layers):
            yc = top - 0.8 - i
            if kind == "add":
                add_y = yc
                ax.add_patch(plt.Circle((5, yc), 0.28, fc="white", ec="black", lw=1.2))
                ax.text(5, yc, "+", ha="center", va="center", fontsize=13)
            else:
                ax.add_patch(FancyBboxPatch((1.6, yc - 0.3), 6.8, 0.6, boxstyle="round,pad=0.02,rounding_size=0.15",
                                            fc=COLORS[kind], ec="black", lw=0.8))
                ax.text(5, yc, label, ha="center", va="center", fontsize=9.5)
            if i + 1 < len(layers):
                ax.annotate("", xy=(5, yc - 0.7 + (0.28 if layers[i + 1][1] == "add" else 0)),
                            xytext=(5, yc - (0.28 if kind == "add" else 0.3)),
                            arrowprops=dict(arrowstyle="-|>", color="black", lw=1))
        if add_y is not None:  # identity shortcut from the block input to the add
            ax.plot([5, 9, 9], [top + 0.15, top + 0.15, add_y], color="black", lw=1)
            ax.annotate("", xy=(5.3, add_y), xytext=(9, add_y), arrowprops=dict(arrowstyle="-|>", color="black", lw=1))
            ax.text(9.35, (top + add_y) / 2, "identity", rotation=90, ha="center", va="center", fontsize=8.5)
        last = top - 0.8 - (len(layers) - 1)
        ax.annotate("", xy=(5, last - 0.9), xytext=(5, last - 0.3),
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1))
    handles = [plt.Rectangle((0, 0), 1, 1, fc=COLORS[k], ec="black", lw=0.5) for k in ("conv", "norm", "act", "other")]
    fig.legend(handles, ["convolution", "normalisation", "activation", "scale"], loc="lower center", ncol=4,
               frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_stage_sizes(frame: pd.DataFrame) -> Figure:
    """Spatial side of the feature map after the stem and each stage, one line per setting.

    ``frame``: columns ``setting``, ``layer`` and ``side`` (:func:`.tables.stage_table`).
    """
    fig, axes = subplots(size=(8.0, 4.0))
    ax = axes[0, 0]
    layers = list(dict.fromkeys(frame["layer"]))
    markers, styles = "os^Dv", ["-", "--", "-", ":", "-."]
    for i, (name, group) in enumerate(frame.groupby("setting", sort=False)):
        group = group.set_index("layer").reindex(layers)
        ax.plot(range(len(layers)), group["side"], marker=markers[i % 5], ls=styles[i % 5], ms=9 - i,
                color=sns.color_palette("deep")[i % 10], label=name)
    ax.set_yscale("log", base=2)
    ax.set_yticks([1, 2, 4, 8, 16, 32, 64], ["1", "2", "4", "8", "16", "32", "64"])
    ax.axhline(1, color=COLORS["wrong"], lw=1, ls=":")
    ax.set_xticks(range(len(layers)), layers)
    ax.set_ylabel("feature-map side (pixels, log scale)")
    ax.legend(loc="upper right", fontsize=8.5)
    ax.set_title("Feature-map side after the stem and each stage")
    fig.tight_layout()
    return fig


def plot_dyt(alphas: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), *, x_max: float = 6.0) -> Figure:
    """DyT's squashing ``tanh(alpha * x)`` for several alpha, next to the identity it replaces."""
    x = np.linspace(-x_max, x_max, 401)
    fig, axes = subplots(size=(7.0, 4.0))
    ax = axes[0, 0]
    palette = sns.color_palette("viridis", len(alphas))
    for color, a in zip(palette, alphas):
        ax.plot(x, np.tanh(a * x), color=color, label=f"α = {a:g}")
    ax.plot(x, np.clip(x, -1.5, 1.5), color=COLORS["reference"], ls=":", lw=1, label="identity (clipped)")
    ax.set_xlabel("x (pre-normalisation activation)")
    ax.set_ylabel("tanh(α x)")
    ax.set_ylim(-1.6, 1.6)
    ax.legend(loc="lower right")
    ax.set_title("DyT(x) = γ · tanh(α x) + β, with γ = 1, β = 0")
    fig.tight_layout()
    return fig


def plot_grn(before: np.ndarray, after: np.ndarray) -> Figure:
    """Per-channel global response (L2 norm over H×W) before and after GRN, channels sorted by response."""
    order = np.argsort(before)[::-1]
    fig, axes = subplots(1, 2, size=(10.5, 3.8))
    ch = np.arange(len(before))
    axes[0, 0].bar(ch, after[order], color=COLORS["selection"], label="after GRN (γ = 1)")
    axes[0, 0].bar(ch, before[order], color=COLORS["train"], label="input")
    axes[0, 0].set_xlabel("channel (sorted by input response)")
    axes[0, 0].set_ylabel("‖X_c‖₂ over H×W")
    axes[0, 0].legend()
    axes[0, 0].set_title("Global response per channel")
    ratio = after[order] / before[order]
    rel = before[order] / before.mean()
    axes[0, 1].scatter(rel, ratio, s=14, color=COLORS["training"])
    axes[0, 1].set_xlabel("relative response N_c = ‖X_c‖ / mean_c ‖X_c‖")
    axes[0, 1].set_ylabel("gain ‖GRN(X)_c‖ / ‖X_c‖")
    axes[0, 1].set_title("GRN amplifies channels by 1 + γ N_c")
    fig.tight_layout()
    return fig


def plot_versus_source(frame: pd.DataFrame) -> Figure:
    """This book's headline numbers (± std) next to the source's, one pair of bars per experiment.

    ``frame``: :func:`.results.versus_frame`; without a full-configuration result it says so.
    """
    fig, axes = subplots(size=(9.0, 0.5 * max(len(frame), 3) + 1.5))
    ax = axes[0, 0]
    if frame.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No chapter has been executed in the full configuration yet:\n"
                "nothing to compare (smoke numbers are not results).", ha="center", va="center", fontsize=11)
        return fig
    y = np.arange(len(frame))[::-1]
    ax.barh(y + 0.2, frame["source"], height=0.38, color=COLORS["reference"], label="source")
    ax.barh(y - 0.2, frame["this book"], height=0.38, xerr=frame["std"].fillna(0.0), color=COLORS["train"],
            label="this book (mean ± std)")
    ax.set_yticks(y, frame["experiment"])
    ax.set_xlabel("top-1 accuracy (%) — different data and resolution: see the table")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
