"""reporting: source claims, run summaries, seed statistics, chapter records and the results table."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from convnext_report import selection, summary
from convnext_report.config import TrainConfig
from convnext_report.report import claims, experiments, results, tables


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
    top1 = frame["ImageNet-1K top-1 (%)"]
    assert top1.iloc[0] == 76.1 and top1.iloc[-1] == 82.0
    assert list(frame.columns) == ["step", "ImageNet-1K top-1 (%)", "design level", "change (points)"]
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
    row = summary.run_summary(fake_run(tmp_path, seconds=600.0))  # selected on the reported split itself
    assert row["top1"] == pytest.approx(50.0) == row["selection_top1"]
    assert row["selected_epoch"] == 2 and row["epochs_run"] == 3
    assert row["gap"] == pytest.approx(10.0)
    assert row["minutes"] == pytest.approx(10.0) and row["gpu_minutes"] == 0.0
    held_out = fake_run(tmp_path, label="h", selection="holdout")
    held_out.record.update(final_top1=0.45, peeked_top1=0.47)  # the test split, evaluated once at the held-out best
    row = summary.run_summary(held_out)
    assert row["top1"] == pytest.approx(45.0) and row["selection_top1"] == pytest.approx(50.0)
    assert row["gap"] == pytest.approx(60.0 - 45.0) and row["peeked_top1"] == pytest.approx(47.0)
    assert "| run | test top-1 (%) |" in tables.show(summary.runs_frame([held_out]), ["label", "top1"])._repr_markdown_()
    gpu = summary.run_summary(fake_run(tmp_path, label="g", device="cuda:0", seconds=60.0))
    assert gpu["gpu_minutes"] == pytest.approx(1.0) and gpu["device"] == "NVIDIA H100"


def test_summarise_mean_std(tmp_path):
    runs = {"x": [fake_run(tmp_path, label="x", seed=s, held_out=(0.1, v)) for s, v in enumerate((0.40, 0.50))],
            "y": [fake_run(tmp_path, label="y", held_out=(0.2, 0.3))]}
    stats = summary.summarise(summary.runs_frame(runs))
    x = stats.set_index("label").loc["x"]
    assert x["mean"] == pytest.approx(45.0) and x["std"] == pytest.approx(math.sqrt(50.0)) and x["n"] == 2
    assert math.isnan(stats.set_index("label").loc["y", "std"])
    curves = summary.curves_frame(runs)
    assert set(curves["label"]) == {"x", "y"} and len(curves) == 6


def test_one_table_format_for_every_page():
    frame = pd.DataFrame({"label": ["a|b", "c"], "top1": [41.234, float("nan")], "params_M": [3.7, None],
                          "GMACs_32": [0.0012, 1.5], "note": ["x_y", tables.Markdown("[log](l.txt)")]})
    text = tables.show(frame)._repr_markdown_()
    header, rule, first, second = text.splitlines()
    assert header == "| run | test top-1 (%) | parameters (M) | GMACs at 32 px | note |"  # readable, with units
    assert rule == "|---|---:|---:|---:|---|"  # numbers right-aligned, no index column
    assert first == "| a\\|b | 41.2 | 3.7 | 0.0012 | x\\_y |"  # escaped text, tiny values not shown as 0.0
    assert second == "| c | — | — | 1.5 | [log](l.txt) |"  # "—" for missing, Markdown cells kept
    assert "NaN" not in repr(tables.show(frame)) and "0 " not in repr(tables.show(frame)).splitlines()[1][:2]
    settings = tables.show({"model": "m", "lr": 0.001}, digits=None)._repr_markdown_()
    assert settings.splitlines()[0] == "| setting | value |" and "| lr | 0.001 |" in settings


def test_headline_rows_and_source_keys(tmp_path):
    runs = [fake_run(tmp_path, seed=s, held_out=(0.1, v), model="convnextv2_base", optimizer="sgd",
                     extra={"recipe": "source", "chapter": "06_optimisers"}) for s, v in enumerate((0.30, 0.34))]
    row = results.headline("opt_x", runs, experiment="base sgd", source_key="001_test2_base_sgd")
    assert row["mean"] == pytest.approx(32.0) and row["n_seeds"] == 2 and row["chapter"] == "06_optimisers"
    assert row["dataset"] == "tiny-imagenet-32, 32 px" and row["epochs"] == "2 of ≤30 (early stopping)"
    with pytest.raises(KeyError):
        results.headline("k", runs, experiment="e", source_key="typo")
    assert claims.source_001_key(runs[0].config) == "001_test2_base_sgd"
    assert claims.source_001_key(TrainConfig(model="convnextv2_base", optimizer="sgd")) is None  # not the source recipe
    rows = results.headlines("opt", {"Base / SGD": runs}, title="Source", source_key=claims.source_001_key)
    assert rows[0]["key"] == "opt_base_sgd" and rows[0]["source_key"] == "001_test2_base_sgd"


def _records(tmp_path: Path, configuration: str) -> list[dict]:
    env = {"device": "CPU (2 cores)", "device_type": "cpu", "python": "3.11", "torch": "2.x", "timm": "1.x",
           "git_commit": "abc", "git_dirty": True}
    results = [{"key": "baseline_top1", "experiment": "Frozen", "chapter": "04_baseline", "metric": "test top-1 (%)",
                "mean": 61.234, "std": 0.5, "n_seeds": 3, "dataset": "cifar10, 32 px", "model": "convnext_tiny",
                "params_M": 27.9, "epochs": "12", "gpu_minutes": 0.0, "device": "CPU", "source_key": "000_baseline",
                "runs": ["abc123"]},
               {"key": "opt_source_cifar100_convnextv2_atto_sgd", "experiment": "Source recipe: atto / sgd",
                "chapter": "06_optimisers", "metric": "test top-1 (%)", "mean": 20.0, "std": None, "n_seeds": 1,
                "dataset": "tin", "epochs": "1", "source_key": None, "runs": ["def456"]}]
    results = [{**r, "configuration": configuration} for r in results]
    records = [{"chapter": "04_baseline", "title": "Baseline", "configuration": configuration, "environment": env,
                "finished_at": "2026-01-02T03:04:05+00:00", "minutes": 1.25, "gpu_minutes": 0.0,
                "results": results, "runs": [{"label": "baseline", "seed": 0, "top1": 61.0, "key": "abc123",
                                              "store_entry": "04_baseline/baseline-s0-abc123"}]}]
    folder = tmp_path / configuration
    folder.mkdir()
    (folder / "04_baseline.json").write_text(json.dumps(records[0]))
    return records


def test_load_records_and_status_table(tmp_path):
    _records(tmp_path, "full")
    records = results.load_records(tmp_path / "full")
    text = results.status_table(records)._repr_markdown_()
    header, _, row = text.splitlines()
    assert header == "| page | configuration | executed | runs | commit | execute again |"
    assert row.startswith("| [4. Baseline](04_baseline.ipynb) | full | 2026-01-02, CPU (2 cores), 1.2 min | 1 run (0 from "
                          "the store) on unknown device, date unknown, 0.0 min (0.0 GPU min) |")
    assert "`abc` with local changes; git cannot compare it with HEAD" in row  # an unknown commit
    assert "`tools/execute_chapters --chapters 04_baseline`" in row
    assert results.load_records(tmp_path / "missing") == []
    assert results.state({"chapter": "02_architecture"}) == "not training"
    assert results.state({"chapter": "04_baseline", "configuration": "smoke"}) == "smoke"


def test_results_table_never_shows_smoke_numbers(tmp_path):
    smoke_rows = results.headline_rows(_records(tmp_path, "smoke"))
    smoke = results.headline_table(smoke_rows)._repr_markdown_()
    assert "61.2" not in smoke and "— (smoke run)" in smoke and "82.61 % (000)" in smoke
    assert "`papermill book/04_baseline.ipynb out.ipynb -f book/params/04_baseline.smoke.yaml`" in smoke
    full = results.headline_table(results.headline_rows(_records(tmp_path, "full")))._repr_markdown_()
    assert "| 61.2 ± 0.5 % (3 seeds) | 82.61 % (000) |" in full
    assert "[ch. 4](04_baseline.ipynb)" in full
    assert "(27.9 M); 12 epochs |" in full and "| tin; None; 1 epoch |" in full
    assert "[config](../results/smoke/04_baseline/baseline-s0-abc123/config.yaml)" in smoke
    csv = base64.b64decode(results.results_csv(smoke_rows).data
                           .split("base64,")[1].split('"')[0]).decode()
    assert "61.234" not in csv and "82.61" in csv


def test_paragraphs_are_written_only_with_their_numbers(tmp_path):
    full, smoke = (results.texts(results.headline_rows(_records(tmp_path, c))) for c in ("full", "smoke"))
    assert full["baseline_top1"] == "61.2 ± 0.5 % (3 seeds)" and smoke["baseline_top1"] is None
    assert full["src_000_baseline"] == "82.61 %"
    assert results.paragraph("Ours {baseline_top1}, theirs {src_000_baseline}.", full) == \
        "Ours 61.2 ± 0.5 % (3 seeds), theirs 82.61 %."
    assert results.paragraph("Ours {baseline_top1}.", smoke) == ""  # never a placeholder in a sentence
    assert results.paragraph("Ours {improved_top1}.", full) == ""  # not executed yet


def test_rerun_command_lists_what_was_passed():
    record = {"configuration": "smoke", "changed": {"epochs": {"full": 30, "value": 1, "by": "smoke file"},
                                                    "lr": {"full": 1e-3, "value": 0.5, "by": "passed (-p/-y)"},
                                                    "seeds": {"full": [0, 1], "value": [3], "by": "passed (-p/-y)"}}}
    assert results.rerun_command("04_baseline", record) == ("papermill book/04_baseline.ipynb out.ipynb -f "
                                                            "book/params/04_baseline.smoke.yaml -p lr 0.5 -y 'seeds: [3]'")


def test_glance_says_what_is_measured_and_what_awaits_a_gpu():
    benchmarks = pd.DataFrame()
    records = [{"chapter": "04_baseline", "configuration": "smoke"}, {"chapter": "02_architecture"}]
    html = results.glance(records, benchmarks).data
    assert "Status at a glance" in html and "chapter 2</a>" in html
    assert '<a href="04_baseline.html">4</a> ran only in the smoke configuration' in html
    assert "have not been executed" in html and "speed on a GPU" in html
    full = results.glance([{"chapter": c, "configuration": "full"} for c in experiments.TRAINING_CHAPTERS],
                          benchmarks).data
    assert "every training chapter has results" not in full  # the GPU speed still waits
    assert "the results of chapters" in full and "smoke" not in full


def test_change_and_best_texts(tmp_path):
    runs = []
    for seed, (final, peeked) in enumerate(((0.40, 0.44), (0.42, 0.43))):
        run = fake_run(tmp_path, label="x", seed=seed, selection="holdout")
        run.record.update(final_top1=final, peeked_top1=peeked)
        runs.append(run)
    row = results.headline("k", runs, experiment="e")
    assert row["mean"] == pytest.approx(41.0) and row["peeked_mean"] == pytest.approx(43.5)
    texts = results.texts([{**row, "configuration": "full"}])
    assert texts["k"] == "41.0 ± 1.4 % (2 seeds)" and texts["k_peeked"] == "43.5 % (+2.5 points)"
    smoke = results.texts([{**row, "configuration": "smoke"}])
    assert smoke["k"] is None and smoke["k_peeked"] is None
    first, second = {**row, "configuration": "full"}, {**row, "mean": 44.0, "configuration": "full"}
    assert results.change_text(first, second) == "+3.0 ± 2.0 points"
    assert results.change_text(None, second) is None
    assert results.best_text([first, {**second, "key": "k2", "experiment": "better"}], "k").endswith("with better")
    assert results.best_text([{**second, "experiment": "Source recipe: atto / sgd"}], "k").endswith("with atto / sgd")


def test_alpha_frame(tmp_path):
    run = fake_run(tmp_path, label="dyt", norm="dyt")
    pd.DataFrame({"epoch": [0, 0, 1, 1], "layer": ["stem.1", "stages.2.blocks.0.norm"] * 2,
                  "alpha": [0.5, 0.5, 0.6, 0.4]}).to_csv(run.path / "dyt_alpha.csv", index=False)
    frame = summary.alpha_frame({"dyt": [run], "ln": [fake_run(tmp_path, label="ln")]})
    assert list(frame["stage"].unique()) == ["stem", "stage 3"] and len(frame) == 4
    assert summary.alpha_frame({"ln": [fake_run(tmp_path, label="ln2")]}).empty
