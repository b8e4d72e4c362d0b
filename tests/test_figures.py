"""figures: every plot returns a detached Figure with the expected panels, on synthetic inputs."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from convnext_report import figures  # noqa: E402
from convnext_report.evaluation import EvalResult  # noqa: E402
from convnext_report.report import claims, diagrams  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leaks():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "figures must be detached from pyplot (shown once by the notebook)"


def history(n=4):
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": np.linspace(2, 0.5, n),
                         "selection_loss": np.linspace(2, 1, n), "train_acc": np.linspace(20, 90, n),
                         "selection_acc": np.linspace(20, 70, n)})


def eval_result(num_classes=20, n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n // num_classes)
    preds = np.where(rng.random(len(labels)) < 0.6, labels, rng.integers(0, num_classes, len(labels)))
    top5 = np.stack([preds] + [(preds + k) % num_classes for k in range(1, 5)], axis=1)
    names = [f"class {i}, long synonym" for i in range(num_classes)]
    return EvalResult(labels=labels, predictions=preds, top5_predictions=top5, confidence=rng.random(len(labels)),
                      loss=1.0, class_names=names)


def images(n=200, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def test_plot_history_two_panels_and_best_marker():
    fig = figures.plot_history(history(), best_epoch=3, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["accuracy", "loss"]
    assert len(fig.axes[0].lines) == 3  # train, held-out (selection), best epoch
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["train", "held-out (selection)", "best epoch 3"]
    with pytest.raises(ValueError, match="history_frame"):
        figures.plot_history(pd.DataFrame({"epoch": [1]}))
    one = figures.plot_history(history().iloc[:1], best_epoch=1).axes[0]  # a one-epoch run: whole epochs only
    assert one.get_xlim() == (0.5, 1.5) and [t for t in one.get_xticks() if 0.5 <= t <= 1.5] == [1.0]


def test_plot_history_accepts_a_run():
    class Run:  # what runner.train returns, reduced to what the figure reads
        history = [{"epoch": i, "train_loss": 1.0, "train_acc": 0.5, "selection_loss": 1.0, "selection_acc": a}
                   for i, a in enumerate((0.2, 0.4, 0.3), start=1)]
        best = {"epoch": 2}
        config = SimpleNamespace(selection="test")

    fig = figures.plot_history(Run())
    assert fig.axes[0].lines[-1].get_xdata()[0] == 2  # the best epoch, as the run numbers it
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()][:2] == ["train", "test (selection)"]


def test_plot_samples_correct_and_wrong_rows():
    result = eval_result()
    fig = figures.plot_samples(result, images(), seed=1)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 16 and len(titled) == 16
    wrong = [ax.get_title() for ax in fig.axes[8:]]
    assert all("→" in t for t in wrong)
    assert all(ax.get_title().count("→") == 0 for ax in fig.axes[:8])


def test_plot_samples_with_too_few_mistakes_leaves_blanks():
    result = eval_result()
    result.predictions = result.labels.copy()
    fig = figures.plot_samples(result, images())
    assert sum(bool(ax.get_title()) for ax in fig.axes) == 8


@pytest.mark.parametrize("num_classes, tiles", [(20, 16), (10, 10)])
def test_plot_first_classes(num_classes, tiles):
    fig = figures.plot_first_classes(eval_result(num_classes), images())
    assert sum(bool(ax.get_title()) for ax in fig.axes) == tiles
    assert fig.axes[0].get_title().startswith("0: class 0")


def test_plot_confusion_limits_classes():
    result = eval_result(30, 300)
    fig = figures.plot_confusion(result.confusion_matrix, result.class_names, max_classes=12)
    assert "first 12 classes" in fig.axes[0].get_title()


def test_book_only_figures():
    fig = diagrams.plot_roadmap(claims.roadmap_frame(), reference={"Swin-T": claims.SWIN_T_TOP1})
    assert len(fig.axes[0].patches) == len(claims.ROADMAP)
    assert len(diagrams.plot_dyt([0.5, 2.0]).axes[0].lines) == 3
    before = np.linspace(1, 3, 16)
    assert len(diagrams.plot_grn(before, before * 1.5).axes) == 2
    stages = pd.DataFrame({"setting": ["a"] * 3 + ["b"] * 3, "layer": ["stem", "stage 1", "stage 2"] * 2,
                           "side": [8, 4, 2, 16, 8, 4]})
    assert len(diagrams.plot_stage_sizes(stages).axes[0].lines) == 3  # two settings + the 1-pixel line
    alpha = pd.DataFrame({"epoch": [0, 1, 0, 1], "alpha": [0.5, 0.6, 0.5, 0.4], "stage": ["stem", "stem", "s1", "s1"]})
    assert len(figures.plot_alpha(alpha, hue="stage").axes[0].lines) == 2
    empty = figures.plot_alpha(alpha.iloc[:0], hue="stage").axes[0]  # e.g. -y "norms: [layernorm]"
    assert not empty.lines and "No DyT α logged" in empty.texts[0].get_text()


def test_curves_and_bars():
    curves = pd.concat([history().assign(label=l, seed=s) for l in ("a", "b") for s in (0, 1)])
    assert len(figures.plot_curves(curves).axes[0].lines) == 2
    summary = pd.DataFrame({"x": ["m1", "m1", "m2", "m2"], "h": ["o1", "o2"] * 2, "mean": [1, 2, 3, 4],
                            "std": [0.1, None, 0.2, 0.3]})
    assert len(figures.plot_metric_bars(summary, x="x", hue="h", reference={"ref": 2.5}).axes[0].patches) == 4
