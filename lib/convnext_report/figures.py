"""Figures of training runs and their predictions, in one style.

Functions return a :class:`matplotlib.figure.Figure` that is already detached from
pyplot, so a notebook cell that ends with ``figures.plot_x(...)`` shows it exactly once.
Training figures take a ``Run`` or the frames of :func:`convnext_report.selection.history_frame`
(``epoch, train_loss, train_acc, selection_loss, selection_acc``; epochs from 1, accuracies in percent).
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
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .evaluation import EvalResult, first_classes, pick_samples  # noqa: E402
from .selection import HISTORY_REQUIRED, history_frame  # noqa: E402

__all__ = ["CAPTION_POINTS", "COLORS", "GRID_COLUMNS", "PAGE_WIDTH", "TICK_POINTS", "plot_alpha", "plot_confusion",
           "plot_curves", "plot_first_classes", "plot_history", "plot_metric_bars", "plot_samples", "subplots",
           "use_style"]

#: one colour per role, reused by every plot
COLORS = {
    "train": "#4C72B0",
    "selection": "#DD8452",
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


#: the book's text column in inches at 100 dpi (about 670 px): a figure this wide is shown at its own size,
#: so its fonts keep their size on the page; tick labels at TICK_POINTS are about 90 % of the body text
PAGE_WIDTH, TICK_POINTS = 6.7, 10.5


def use_style() -> None:
    """Apply the book's matplotlib/seaborn style (idempotent): page-sized fonts, no offset notation."""
    sns.set_theme(style="whitegrid", context="notebook", palette="deep", font="DejaVu Sans")
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.autolayout": False, "font.size": TICK_POINTS,
        "xtick.labelsize": TICK_POINTS, "ytick.labelsize": TICK_POINTS, "axes.labelsize": 11,
        "axes.titlesize": 11.5, "legend.fontsize": 10, "legend.title_fontsize": 10,
        "axes.formatter.useoffset": False,
    })


def subplots(nrows: int = 1, ncols: int = 1, *, height: float, width: float = PAGE_WIDTH,
             **kw) -> tuple[Figure, np.ndarray]:
    """A detached figure in the book's style (``width`` inches, at most the page's) with a 2-D array of axes."""
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(width, PAGE_WIDTH), height), squeeze=False, **kw)
    plt.close(fig)  # detached: shown once when a cell returns it
    return fig, axes


def _as_frame(history) -> pd.DataFrame:
    if hasattr(history, "history"):  # a Run
        return history_frame(history)
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    missing = set(HISTORY_REQUIRED) - set(frame.columns)
    if missing:
        raise ValueError(
            f"history lacks columns {sorted(missing)}; build it with history.history_frame(run)"
        )
    return frame


# --------------------------------------------------------------------------- training


def plot_history(history, *, title: str | None = None, best_epoch: int | None = None) -> Figure:
    """Train and selection-split accuracy (left) and loss (right) per epoch, as the source's Figs. 3 and 6.

    ``history``: a ``Run`` (its best epoch is marked) or a frame from ``history.history_frame``. The
    selection split is "held-out (selection)", or "test (selection)" for a run that selects on the test split.
    """
    if best_epoch is None and hasattr(history, "best"):
        best_epoch = history.best.get("epoch")  # None before the first epoch finished
    on_test = getattr(getattr(history, "config", None), "selection", "holdout") == "test"
    names = {"train": "train", "selection": "test (selection)" if on_test else "held-out (selection)"}
    frame = _as_frame(history)
    fig, axes = subplots(1, 2, height=3.4)
    for ax, metric, label in ((axes[0, 0], "acc", "accuracy (%)"), (axes[0, 1], "loss", "loss")):
        for split, name in names.items():
            ax.plot(frame["epoch"], frame[f"{split}_{metric}"], marker="o", ms=4,
                    color=COLORS[split], label=name)
        if best_epoch is not None:
            ax.axvline(best_epoch, color=COLORS["reference"], ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: not 0.95..1.05
        ax.set_xlim(frame["epoch"].min() - 0.5, frame["epoch"].max() + 0.5)
        ax.set_ylabel(label)
        ax.legend(loc="best")
    axes[0, 0].set_title("accuracy")
    axes[0, 1].set_title("loss")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(frame: pd.DataFrame, *, metric: str = "selection_acc", hue: str = "label",
                title: str | None = None, ylabel: str | None = None) -> Figure:
    """One curve per ``hue`` value: the seed mean with a band of ± one standard deviation.

    ``frame`` is long: columns ``epoch``, ``metric``, ``hue`` (and ``seed``).
    """
    fig, axes = subplots(height=4.0)
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
                     ylabel: str = "test top-1 (%)", title: str | None = None) -> Figure:
    """Bars of ``value`` (± ``err``) per ``x`` (and ``hue``); optional labelled reference lines."""
    fig, axes = subplots(height=4.0)
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


#: panels per row of an image grid, and its caption size: readable when the page scales the figure
#: down to its width (about 700 px for 8 inches of figure)
GRID_COLUMNS, CAPTION_POINTS = 4, 10.5


def plot_samples(result: EvalResult, images, *, n_correct: int = 8, n_wrong: int = 8, seed: int = 0,
                 title: str | None = None) -> Figure:
    """Random correct (top rows) and wrong (bottom rows) predictions, as the source's Figs. 4 and 7.

    ``result``: an :class:`~convnext_report.evaluation.EvalResult` (``run.eval``); ``images``: the
    uint8 ``(N, 3, H, W)`` images it indexes (``run.test_data().images``). The picks are
    :func:`convnext_report.evaluation.pick_samples`.
    """
    picks = pick_samples(result, n_correct=n_correct, n_wrong=n_wrong, seed=seed)
    parts = [(picks[picks["correct"]], "correct", n_correct), (picks[~picks["correct"]], "wrong", n_wrong)]
    rows_of = [max(1, -(-n // GRID_COLUMNS)) for _, _, n in parts]
    fig, axes = subplots(sum(rows_of), GRID_COLUMNS, height=1.95 * sum(rows_of) + 0.5)
    first_row = 0
    for (part, kind, n), nrows in zip(parts, rows_of):
        for i in range(nrows * GRID_COLUMNS):
            ax = axes[first_row + i // GRID_COLUMNS, i % GRID_COLUMNS]
            if i >= len(part):
                ax.axis("off")
                continue
            row = part.iloc[i]
            _show_image(ax, images[int(row["index"])])
            text = _short(row["label_name"], 18)
            if kind == "wrong":
                text = f"{text}\n→ {_short(row['prediction_name'], 18)}"
            ax.set_title(text, fontsize=CAPTION_POINTS, color=COLORS[kind])
        if len(part):
            axes[first_row, 0].set_ylabel(kind, color=COLORS[kind], fontsize=CAPTION_POINTS + 1)
        first_row += nrows
    if title:  # a page gives its figures numbered captions instead
        fig.suptitle(title, fontsize=CAPTION_POINTS + 1)
    fig.tight_layout()
    return fig


def plot_first_classes(result: EvalResult, images, *, k: int = 16, seed: int | None = 0, title: str | None = None) -> Figure:
    """One image of each of the classes 0..k-1 with its prediction (source Figs. 5 and 8).

    Titles give the class id and name, the class's accuracy over all its evaluated images, and
    the prediction for the shown image (green: right, red: wrong). Picks:
    :func:`convnext_report.evaluation.first_classes`.
    """
    picks = first_classes(result, k=k, seed=seed)
    per_class = result.per_class_accuracy
    nrows = max(1, -(-len(picks) // GRID_COLUMNS))
    fig, axes = subplots(nrows, GRID_COLUMNS, height=2.1 * nrows + 0.5)
    for i, ax in enumerate(axes.flat):
        if i >= len(picks):
            ax.axis("off")
            continue
        row = picks.iloc[i]
        _show_image(ax, images[int(row["index"])])
        c = int(row["label"])
        ax.set_title(f"{c}: {_short(row['label_name'], 16)} ({100 * per_class[c]:.0f}%)\n"
                     f"pred: {_short(row['prediction_name'], 16)}",
                     fontsize=CAPTION_POINTS, color=COLORS["correct" if row["correct"] else "wrong"])
    if title:  # a page gives its figures numbered captions instead
        fig.suptitle(title, fontsize=CAPTION_POINTS + 1)
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
    fig, axes = subplots(height=PAGE_WIDTH - 0.6)
    sns.heatmap(cm, ax=axes[0, 0], cmap="Blues", square=True, annot=k <= 12, fmt=".0f",
                xticklabels=names, yticklabels=names, cbar_kws={"label": "% of true class" if normalize else "count"})
    axes[0, 0].set_xlabel("predicted")
    axes[0, 0].set_ylabel("true")
    axes[0, 0].set_title(title or (f"first {k} classes" if k < len(class_names) else ""))
    fig.tight_layout()
    return fig


def plot_alpha(frame: pd.DataFrame, *, hue: str = "layer", title: str | None = None) -> Figure:
    """How DyT's learnable alpha moves during training: ``frame`` has ``epoch``, ``alpha`` and ``hue`` (empty: a
    figure that says no run logged any)."""
    fig, axes = subplots(height=4.0)
    ax = axes[0, 0]
    if frame.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No DyT α logged: none of these runs has a DyT layer.", ha="center", va="center")
        return fig
    groups = list(frame.groupby(hue, sort=False))
    palette = sns.color_palette("viridis", max(len(groups), 1))
    for color, (name, group) in zip(palette, groups):
        stats = group.groupby("epoch")["alpha"].mean()
        ax.plot(stats.index, stats.to_numpy(), color=color, marker="o", ms=3, label=str(name))
    ax.set_xlabel("epoch (0: initial value)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("α")
    low, high = ax.get_ylim()
    if high - low < 0.1:  # alphas that barely moved: a readable axis instead of 1e-8 steps
        ax.set_ylim((low + high) / 2 - 0.05, (low + high) / 2 + 0.05)
    if len(groups) <= 12:
        ax.legend(loc="best", ncol=2)
    if title:  # a page gives its figures numbered captions instead
        ax.set_title(title)
    fig.tight_layout()
    return fig


