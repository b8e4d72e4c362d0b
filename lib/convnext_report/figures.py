"""Every figure the book shows, in one style.

Functions return a :class:`matplotlib.figure.Figure` that is already detached from
pyplot, so a notebook cell that ends with ``figures.plot_x(...)`` shows it exactly once.
Training figures take the tidy frames built by :mod:`convnext_report.reporting`
(``epoch, train_loss, train_acc, val_loss, val_acc``; accuracies in percent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.rcParams["svg.hashsalt"] = "convnext-report"  # deterministic SVG ids
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: one colour per role, reused by every plot
COLORS = {
    "train": "#4C72B0",
    "val": "#DD8452",
    "correct": "#2a9d4b",
    "wrong": "#c8372d",
    "reference": "#7f7f7f",
    "training": "#8172B3",
    "macro": "#4C72B0",
    "micro": "#55A868",
    "norm": "#F2C45A",
    "conv": "#A1C9F4",
    "act": "#FFB482",
    "other": "#D0D0D0",
}


def use_style() -> None:
    """Apply the book's matplotlib/seaborn style (idempotent)."""
    sns.set_theme(style="whitegrid", context="notebook", palette="deep", font="DejaVu Sans")
    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 9,
            "figure.autolayout": False,
        }
    )


def _subplots(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float], **kw) -> tuple[Figure, np.ndarray]:
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    plt.close(fig)  # detached: shown once when a cell returns it
    return fig, axes


def _as_frame(history) -> pd.DataFrame:
    from convnext_report.reporting import HISTORY_REQUIRED, history_frame

    if hasattr(history, "history"):  # a Run
        return history_frame(history)
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    missing = set(HISTORY_REQUIRED) - set(frame.columns)
    if missing:
        raise ValueError(
            f"history lacks columns {sorted(missing)}; build it with reporting.history_frame(run)"
        )
    return frame


# --------------------------------------------------------------------------- training


def plot_history(history, *, title: str | None = None, best_epoch: int | None = None) -> Figure:
    """Train/val accuracy (left) and loss (right) per epoch, as the source's Figs. 3 and 6.

    ``history``: a ``Run`` (its best epoch is marked) or a frame from ``reporting.history_frame``.
    """
    if best_epoch is None and hasattr(history, "best"):
        best_epoch = int(history.best["epoch"]) + 1  # the runner counts epochs from 0
    frame = _as_frame(history)
    fig, axes = _subplots(1, 2, size=(10.5, 3.8))
    for ax, metric, label in ((axes[0, 0], "acc", "accuracy (%)"), (axes[0, 1], "loss", "loss")):
        for split in ("train", "val"):
            ax.plot(frame["epoch"], frame[f"{split}_{metric}"], marker="o", ms=4,
                    color=COLORS[split], label=split)
        if best_epoch is not None:
            ax.axvline(best_epoch, color=COLORS["reference"], ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.legend(loc="best")
    axes[0, 0].set_title("accuracy")
    axes[0, 1].set_title("loss")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(frame: pd.DataFrame, *, metric: str = "val_acc", hue: str = "label",
                title: str | None = None, ylabel: str | None = None) -> Figure:
    """One curve per ``hue`` value: the seed mean with a band of ± one standard deviation.

    ``frame`` is long: columns ``epoch``, ``metric``, ``hue`` (and ``seed``).
    """
    fig, axes = _subplots(size=(7.5, 4.0))
    ax = axes[0, 0]
    for i, (name, group) in enumerate(frame.groupby(hue, sort=False)):
        stats = group.groupby("epoch")[metric].agg(["mean", "std"]).fillna(0.0)
        color = sns.color_palette("deep")[i % 10]
        ax.plot(stats.index, stats["mean"], marker="o", ms=3, color=color, label=str(name))
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                        color=color, alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel or metric)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_metric_bars(frame: pd.DataFrame, *, x: str, value: str = "mean", err: str | None = "std",
                     hue: str | None = None, reference: Mapping[str, float] | None = None,
                     ylabel: str = "val top-1 (%)", title: str | None = None) -> Figure:
    """Bars of ``value`` (± ``err``) per ``x`` (and ``hue``); optional labelled reference lines."""
    fig, axes = _subplots(size=(8.0, 4.0))
    ax = axes[0, 0]
    xs = list(dict.fromkeys(frame[x]))
    hues = list(dict.fromkeys(frame[hue])) if hue else [None]
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        sub = frame if h is None else frame[frame[hue] == h]
        sub = sub.set_index(x).reindex(xs)
        pos = np.arange(len(xs)) - 0.4 + width * (j + 0.5)
        yerr = sub[err].fillna(0.0).to_numpy() if err else None
        ax.bar(pos, sub[value].to_numpy(), width=width * 0.95, yerr=yerr, capsize=3,
               color=sns.color_palette("deep")[j % 10], label=None if h is None else str(h))
    for k, (name, level) in enumerate((reference or {}).items()):
        ax.axhline(level, color=COLORS["reference"], ls=("--", ":", "-.")[k % 3], lw=1.2, label=name)
    ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs], rotation=20 if len(xs) > 4 else 0, ha="right" if len(xs) > 4 else "center")
    ax.set_ylabel(ylabel)
    if hue or reference:
        ax.legend(loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _show_image(ax, image) -> None:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr.transpose(1, 2, 0)
    ax.imshow(arr.squeeze(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _short(name: str, width: int = 14) -> str:
    name = str(name).split(",")[0]
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_samples(result, images, *, n_correct: int = 8, n_wrong: int = 8, seed: int = 0,
                 title: str | None = None) -> Figure:
    """Random correct (top row) and wrong (bottom row) predictions, as the source's Figs. 4 and 7.

    ``result``: an :class:`~convnext_report.evaluation.EvalResult` (``run.eval``); ``images``: the
    uint8 ``(N, 3, H, W)`` validation images it indexes (``run.val_data().images``). The picks are
    :func:`convnext_report.evaluation.pick_samples`.
    """
    from convnext_report.evaluation import pick_samples

    picks = pick_samples(result, n_correct=n_correct, n_wrong=n_wrong, seed=seed)
    rows = (picks[picks["correct"]], picks[~picks["correct"]])
    ncols = max(n_correct, n_wrong, 1)
    fig, axes = _subplots(2, ncols, size=(1.45 * ncols, 4.1))
    for r, (part, kind) in enumerate(zip(rows, ("correct", "wrong"))):
        for col in range(ncols):
            ax = axes[r, col]
            if col >= len(part):
                ax.axis("off")
                continue
            row = part.iloc[col]
            _show_image(ax, images[int(row["index"])])
            text = _short(row["label_name"])
            if kind == "wrong":
                text = f"{text}\n→ {_short(row['prediction_name'])}"
            ax.set_title(text, fontsize=7.5, color=COLORS[kind])
        if len(part):
            axes[r, 0].set_ylabel(kind, color=COLORS[kind], fontsize=10)
    fig.suptitle(title or f"{len(rows[0])} random correct (top) and {len(rows[1])} random wrong predictions "
                 f"(bottom, true → predicted); seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_first_classes(result, images, *, k: int = 16, seed: int | None = 0, title: str | None = None) -> Figure:
    """One validation image of each of the classes 0..k-1 with its prediction (source Figs. 5 and 8).

    Titles give the class id and name, the class's accuracy over the whole validation set, and
    the prediction for the shown image (green: right, red: wrong). Picks:
    :func:`convnext_report.evaluation.first_classes`.
    """
    from convnext_report.evaluation import first_classes

    picks = first_classes(result, k=k, seed=seed)
    per_class = result.per_class_accuracy
    ncols = 8
    nrows = max(1, -(-len(picks) // ncols))
    fig, axes = _subplots(nrows, ncols, size=(1.5 * ncols, 1.8 * nrows + 0.4))
    for i, ax in enumerate(axes.flat):
        if i >= len(picks):
            ax.axis("off")
            continue
        row = picks.iloc[i]
        _show_image(ax, images[int(row["index"])])
        c = int(row["label"])
        ax.set_title(f"{c}: {_short(row['label_name'], 11)} ({100 * per_class[c]:.0f}%)\n"
                     f"pred: {_short(row['prediction_name'], 11)}",
                     fontsize=7, color=COLORS["correct" if row["correct"] else "wrong"])
    fig.suptitle(title or f"Classes 0–{len(picks) - 1}: class (accuracy over its validation images) "
                 "and the prediction for one of them", fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(confusion, class_names: Sequence[str], *, normalize: bool = True,
                   max_classes: int | None = 20, title: str | None = None) -> Figure:
    """Confusion matrix (rows: true, columns: predicted), row-normalised to percent by default."""
    cm = np.asarray(confusion, dtype=float)
    k = cm.shape[0] if max_classes is None else min(cm.shape[0], max_classes)
    cm = cm[:k, :k]
    if normalize:
        cm = 100.0 * cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    names = [_short(n, 12) for n in class_names[:k]]
    side = max(4.5, 0.38 * k + 2)
    fig, axes = _subplots(size=(side + 1, side))
    sns.heatmap(cm, ax=axes[0, 0], cmap="Blues", square=True, annot=k <= 12, fmt=".0f",
                xticklabels=names, yticklabels=names, cbar_kws={"label": "% of true class" if normalize else "count"})
    axes[0, 0].set_xlabel("predicted")
    axes[0, 0].set_ylabel("true")
    axes[0, 0].set_title(title or ("confusion matrix" + (f" (first {k} classes)" if k < len(class_names) else "")))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- book-only


def plot_roadmap(roadmap: pd.DataFrame, *, reference: Mapping[str, float] | None = None) -> Figure:
    """The paper's modernisation steps (ImageNet-1K top-1) as horizontal bars coloured by design group.

    ``roadmap``: columns ``step``, ``top1`` and ``group`` (``training``/``macro``/``micro``).
    """
    fig, axes = _subplots(size=(9.0, 0.42 * len(roadmap) + 1.2))
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
    fig, axes = _subplots(1, len(blocks), size=(3.6 * len(blocks), 6.0))
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

    ``frame``: columns ``setting``, ``layer`` and ``side`` (as built by ``reporting.stage_sides``).
    """
    fig, axes = _subplots(size=(8.0, 4.0))
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
    fig, axes = _subplots(size=(7.0, 4.0))
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
    fig, axes = _subplots(1, 2, size=(10.5, 3.8))
    ch = np.arange(len(before))
    axes[0, 0].bar(ch, after[order], color=COLORS["val"], label="after GRN (γ = 1)")
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


def plot_alpha(frame: pd.DataFrame, *, hue: str = "layer", title: str | None = None) -> Figure:
    """How DyT's learnable alpha moves during training: ``frame`` has ``epoch``, ``alpha`` and ``hue``."""
    fig, axes = _subplots(size=(8.0, 4.2))
    ax = axes[0, 0]
    groups = list(frame.groupby(hue, sort=False))
    palette = sns.color_palette("viridis", max(len(groups), 1))
    for color, (name, group) in zip(palette, groups):
        stats = group.groupby("epoch")["alpha"].mean()
        ax.plot(stats.index, stats.to_numpy(), color=color, marker="o", ms=3, label=str(name))
    ax.set_xlabel("epoch (0: initial value)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("α")
    if len(groups) <= 12:
        ax.legend(loc="best", fontsize=8, ncol=2)
    ax.set_title(title or "DyT α per layer during training")
    fig.tight_layout()
    return fig


def plot_versus_source(frame: pd.DataFrame) -> Figure:
    """This book's headline numbers (± std) next to the source's, one pair of bars per experiment.

    ``frame``: ``reporting.versus_frame(records)``; with no full-configuration result yet the
    figure says so instead of showing smoke numbers.
    """
    fig, axes = _subplots(size=(9.0, 0.5 * max(len(frame), 3) + 1.5))
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
