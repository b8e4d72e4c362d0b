"""reporting: source claims, run summaries, seed statistics, chapter records and the results table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from convnext_report import selection
from convnext_report.config import TrainConfig
from convnext_report.report import claims, results, tables


def fake_run(tmp_path: Path, *, label="a", seed=0, held_out=(0.30, 0.50, 0.40), train=(0.35, 0.60, 0.80),
             device="cpu", seconds=120.0, **config) -> SimpleNamespace:
    """A finished run as the runner returns it: epochs from 1, accuracies as fractions."""
    history = [{"epoch": i + 1, "train_loss": 2.0 - i * 0.5, "train_acc": t, "selection_loss": 1.5 - v,
                "selection_acc": v, "selection_top5": min(1.0, v + 0.3), "lr": 1e-3,
                "seconds": seconds / len(held_out), "images_per_second": 500.0}
               for i, (t, v) in enumerate(zip(train, held_out))]
    extra = {"label": label, **config.pop("extra", {})}
    cfg = TrainConfig(seed=seed, extra=extra, **config)
    path = tmp_path / f"{label}-s{seed}"
    path.mkdir(parents=True, exist_ok=True)
    best = max(range(len(held_out)), key=lambda i: held_out[i])
    return SimpleNamespace(path=path, config=cfg, history=history,
                           record={"device": device, "device_name": "CPU (2 cores)" if device == "cpu" else "NVIDIA H100",
                                   "wall_time_seconds": seconds},
                           best={"epoch": best + 1, "selection_acc": held_out[best]})


def test_roadmap_and_claims():
    frame = claims.roadmap_frame()
    assert frame["top1"].iloc[0] == 76.1 and frame["top1"].iloc[-1] == 82.0
    assert list(frame.columns) == ["step", "top1", "group", "change"]
    assert claims.source_value("000_baseline") == 82.61
    assert claims.source_value("000_improved") == 86.30
    with pytest.raises(KeyError, match="known"):
        claims.source_value("nope")


def test_history_frame_converts_runner_history(tmp_path):
    frame = selection.history_frame(fake_run(tmp_path))
    assert list(frame["epoch"]) == [1, 2, 3]  # as the run wrote them: the first epoch is 1
    assert frame["selection_acc"].tolist() == pytest.approx([30.0, 50.0, 40.0])  # percent
    with pytest.raises(ValueError, match="no finished epoch"):
        selection.history_frame([])
    with pytest.raises(ValueError, match="selection_acc"):
        selection.history_frame([{"epoch": 1, "train_loss": 1, "train_acc": 0.1, "selection_loss": 1}])


def test_run_summary_best_epoch_gap_and_gpu_minutes(tmp_path):
    row = tables.run_summary(fake_run(tmp_path, seconds=600.0))  # selected on the reported split itself
    assert row["top1"] == pytest.approx(50.0) == row["selection_top1"]
    assert row["selected_epoch"] == 2 and row["epochs_run"] == 3
    assert row["gap"] == pytest.approx(10.0)
    assert row["minutes"] == pytest.approx(10.0) and row["gpu_minutes"] == 0.0
    held_out = fake_run(tmp_path, label="h", selection="holdout")
    held_out.record.update(final_top1=0.45, peeked_top1=0.47)  # the test split, evaluated once at the held-out best
    row = tables.run_summary(held_out)
    assert row["top1"] == pytest.approx(45.0) and row["selection_top1"] == pytest.approx(50.0)
    assert row["gap"] == pytest.approx(60.0 - 45.0) and row["peeked_top1"] == pytest.approx(47.0)
    assert "test top-1 (%)" in tables.show(tables.runs_frame([held_out]), ["label", "top1"]).columns
    gpu = tables.run_summary(fake_run(tmp_path, label="g", device="cuda:0", seconds=60.0))
    assert gpu["gpu_minutes"] == pytest.approx(1.0) and gpu["device"] == "NVIDIA H100"


def test_summarise_mean_std_and_formatting(tmp_path):
    runs = {"x": [fake_run(tmp_path, label="x", seed=s, held_out=(0.1, v)) for s, v in enumerate((0.40, 0.50))],
            "y": [fake_run(tmp_path, label="y", held_out=(0.2, 0.3))]}
    summary = tables.summarise(tables.runs_frame(runs))
    x = summary.set_index("label").loc["x"]
    assert x["mean"] == pytest.approx(45.0) and x["std"] == pytest.approx(math.sqrt(50.0)) and x["n"] == 2
    assert math.isnan(summary.set_index("label").loc["y", "std"])
    assert tables.mean_std(45.0, 7.07, 2) == "45.0 ± 7.1 (2 seeds)"
    assert tables.mean_std(30.0, float("nan"), 1) == "30.0 (1 seed)"
    assert tables.mean_std(float("nan")) == "—"
    versus = tables.versus_reference(summary, "x")
    assert versus.set_index("label").loc["y", "change vs x"] == pytest.approx(-15.0)
    with pytest.raises(ValueError, match="labels"):
        tables.versus_reference(summary, "missing")


def test_pivot_select_and_curves(tmp_path):
    runs = {f"{m} / {o}": [fake_run(tmp_path, label=f"{m}{o}", model=m, optimizer=o)]
            for m in ("convnextv2_atto", "convnextv2_nano") for o in ("sgd", "adamw")}
    summary = tables.summarise(tables.runs_frame(runs), by=["model", "optimizer"])
    table = tables.pivot_mean_std(summary, index="model", columns="optimizer")
    assert table.shape == (2, 2) and table.loc["convnextv2_atto", "sgd"] == "50.0"
    assert list(tables.select(runs, model="convnextv2_nano")) == ["convnextv2_nano / sgd", "convnextv2_nano / adamw"]
    curves = tables.curves_frame(tables.select(runs, optimizer="sgd"))
    assert set(curves["label"]) == {"convnextv2_atto / sgd", "convnextv2_nano / sgd"} and len(curves) == 6


def test_headline_rows_and_source_keys(tmp_path):
    runs = [fake_run(tmp_path, seed=s, held_out=(0.1, v), model="convnextv2_base", optimizer="sgd",
                     extra={"recipe": "source"}) for s, v in enumerate((0.30, 0.34))]
    row = results.headline("opt_x", runs, experiment="base sgd", chapter="06", source_key="001_test2_base_sgd")
    assert row["mean"] == pytest.approx(32.0) and row["n_seeds"] == 2
    assert row["dataset"].startswith("tiny-imagenet-32") and row["resolution"] == "32 px, stem stride 2"
    with pytest.raises(KeyError):
        results.headline("k", runs, experiment="e", chapter="c", source_key="typo")
    assert claims.source_001_key(runs[0].config) == "001_test2_base_sgd"
    assert claims.source_001_key(TrainConfig(model="convnextv2_base", optimizer="sgd")) is None  # not the source recipe


def _records(tmp_path: Path, configuration: str) -> list[dict]:
    env = {"device": "CPU (2 cores)", "device_type": "cpu", "python": "3.11", "torch": "2.x", "timm": "1.x",
           "git_commit": "abc", "git_dirty": True}
    results = [{"key": "baseline_top1", "experiment": "Frozen", "chapter": "04_baseline", "metric": "test top-1 (%)",
                "mean": 61.234, "std": 0.5, "n_seeds": 3, "dataset": "cifar10", "resolution": "32 px",
                "epochs": "12", "minutes": 3.0, "gpu_minutes": 0.0, "source_key": "000_baseline", "note": ""},
               {"key": "opt_source_cifar100_convnextv2_atto_sgd", "experiment": "Source recipe: atto / sgd",
                "chapter": "06", "metric": "test top-1 (%)", "mean": 20.0, "std": None, "n_seeds": 1,
                "dataset": "tin", "resolution": "32", "epochs": "1", "source_key": None}]
    records = [{"chapter": "04_baseline", "title": "Baseline", "configuration": configuration, "environment": env,
                "finished_at": "2026-01-02T03:04:05+00:00", "minutes": 1.25, "gpu_minutes": 0.0,
                "results": results, "runs": [{"label": "baseline", "seed": 0, "top1": 61.0}]}]
    folder = tmp_path / configuration
    folder.mkdir()
    (folder / "04_baseline.json").write_text(json.dumps(records[0]))
    return records


def test_load_records_and_status_table(tmp_path):
    _records(tmp_path, "full")
    records = results.load_records(tmp_path / "full")
    status = results.status_table(records)
    assert status.loc[0, "device"] == "CPU (2 cores)" and status.loc[0, "GPU minutes"] == 0.0
    assert status.loc[0, "commit"] == "abc (+ local changes)" and status.loc[0, "executed"] == "2026-01-02 03:04"
    assert results.load_records(tmp_path / "missing") == []
    assert results.runs_table(records).loc[0, "label"] == "baseline"


def test_results_table_never_shows_smoke_numbers(tmp_path):
    smoke = results.results_table(_records(tmp_path, "smoke"))
    assert (smoke["this book"] == results.SMOKE_LABEL).all()
    assert "61.2" not in smoke.to_string()
    full = results.results_table(_records(tmp_path, "full"))
    assert full.loc[0, "this book"] == "61.2 ± 0.5 % (3 seeds)"
    assert full.loc[0, "source"] == "82.61 % (source 000)"


def test_glue_values(tmp_path):
    values = results.glue_values(_records(tmp_path, "smoke"))
    assert set(results.GLUE_KEYS) <= set(values)
    assert values["baseline_top1"] == results.SMOKE_LABEL
    assert values["improved_top1"] == "not executed yet"
    assert values["src_000_baseline"] == "82.61 %"
    full = results.glue_values(_records(tmp_path, "full"))
    assert full["baseline_top1"].startswith("61.2")
    assert full["optim_best_source"].endswith("(Source recipe: atto / sgd)")
    assert results.find_headline(_records(tmp_path, "full2"), "baseline_top1")["configuration"] == "full2"


def test_versus_frame_only_full_rows(tmp_path):
    assert results.versus_frame(_records(tmp_path, "smoke")).empty
    frame = results.versus_frame(_records(tmp_path, "full"))
    assert frame.loc[0, "source"] == 82.61 and frame.loc[0, "this book"] == pytest.approx(61.234)


def test_alpha_frame_and_throughput(tmp_path):
    run = fake_run(tmp_path, label="dyt", norm="dyt")
    pd.DataFrame({"epoch": [0, 0, 1, 1], "layer": ["stem.1", "stages.2.blocks.0.norm"] * 2,
                  "alpha": [0.5, 0.5, 0.6, 0.4]}).to_csv(run.path / "dyt_alpha.csv", index=False)
    frame = tables.alpha_frame({"dyt": [run], "ln": [fake_run(tmp_path, label="ln")]})
    assert list(frame["stage"].unique()) == ["stem", "stage 3"] and len(frame) == 4
    assert tables.alpha_frame({"ln": [fake_run(tmp_path, label="ln2")]}).empty
    speed = tables.throughput({"dyt": [run]})
    assert speed.loc[0, "images/s"] == 500.0 and speed.loc[0, "ms/step"] == pytest.approx(1000 * 256 / 500, rel=1e-3)


def test_peeking_and_chapter_glue_texts(tmp_path):
    runs = []
    for seed, (final, peeked) in enumerate(((0.40, 0.44), (0.42, 0.43))):
        run = fake_run(tmp_path, label="x", seed=seed, selection="holdout")
        run.record.update(final_top1=final, peeked_top1=peeked)
        runs.append(run)
    frame = tables.runs_frame({"x": runs})
    peek = tables.peeking(frame).set_index("label").loc["x"]
    assert peek["what peeking adds (points)"] == pytest.approx(2.5)
    assert peek["best held-out top-1 over the epochs (%)"] == pytest.approx(50.0) and peek["seeds"] == 2
    line = tables.summary_line(runs[1], source="trained")
    assert line.startswith("x (seed 1): test top-1 42.00 % at epoch 2 of 3 (selected on held-out training images)")
    row = results.headline("k", runs, experiment="e", chapter="06")
    assert row["mean"] == pytest.approx(41.0) and row["peeked_mean"] == pytest.approx(43.5)
    texts = results.headline_texts([{**row, "configuration": "full"}])
    assert texts["k"] == "41.0 ± 1.4 % (2 seeds)" and texts["k_peeked"] == "43.5 % (+2.5 points)"
    smoke = results.headline_texts([{**row, "configuration": "smoke"}])
    assert smoke["k"] == smoke["k_peeked"] == results.SMOKE_LABEL
    first, second = {**row, "configuration": "full"}, {**row, "mean": 44.0, "configuration": "full"}
    assert results.change_text(first, second) == "+3.00 ± 2.00 points"
    assert results.change_text(None, second).startswith("—")
    assert results.best_text([first, {**second, "key": "k2", "experiment": "better"}], "k").endswith("(better)")
    assert results.double_source_text() == "71.4 %"
