"""The GPU budget of the committed notebooks, its estimates, and passed parameters in smoke mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convnext_report.cli import main
from convnext_report.config import TrainConfig
from convnext_report.report import chapter, designs, estimate, parameters, paths, plan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _folders(book_folders):
    """Every test here works in temporary book folders."""


@pytest.fixture(scope="module")
def book_plan() -> list[plan.ChapterPlan]:
    """The plan as ``python -m convnext_report plan`` makes it (with any GPU benchmark rows committed)."""
    return plan.build_plan(book=REPO / "book", benchmarks=estimate.load_benchmarks(REPO / "benchmarks" / "results"))


def test_the_book_fits_its_gpu_budget(book_plan):
    seconds = {p.name: p.seconds for p in book_plan}
    assert sum(seconds.values()) <= plan.TOTAL_LIMIT_S, seconds
    assert all(s <= plan.CHAPTER_LIMIT_S for s in seconds.values()), seconds
    assert sum(seconds[c] for c in designs.TRANSFER_CHAIN) <= plan.CHAIN_LIMIT_S, seconds


def test_compared_numbers_have_three_seeds_and_the_source_recipe_beside_ours(book_plan):
    by_name = {p.name: p for p in book_plan}
    for name in designs.TRAINING_CHAPTERS[1:]:
        assert len({r.seed for r in by_name[name].runs}) >= 3, name
    for name in ("06_optimisers", "07_normalisation"):  # source 001's data set; its recipe beside ours
        runs = by_name[name].runs
        assert {r.config.dataset for r in runs} == {"cifar100"}
        models: dict[str, set] = {}
        for r in runs:
            models.setdefault(r.group, set()).add(r.config.model)
        assert set(models) == {"source", "small-image"} and models["small-image"] <= models["source"], models
    assert {r.config.dataset for c in ("04_baseline", "05_improved") for r in by_name[c].runs} == {"cifar100"}


def test_shared_runs_are_counted_once(book_plan):
    seven = next(p for p in book_plan if p.name == "07_normalisation")
    shared = [r for r in seven.runs if r.shared_with]
    assert shared and {r.shared_with for r in shared} == {"06_optimisers"}
    assert {r.config.norm for r in shared} == {"layernorm"}


def test_cli_prints_chapters_and_a_total_last(capsys, book_plan):
    assert main(["plan"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"total: {sum(p.seconds for p in book_plan):.0f} s"
    assert "ASSUMED_TFLOPS" in lines[0] and "RUN_OVERHEAD_S" in lines[0] and "STEP_FLOOR" in lines[0]
    assert any(line.startswith("06_optimisers") for line in lines)


def test_notebook_defaults_are_read_without_a_kernel():
    params = parameters.notebook_defaults(REPO / "book" / "06_optimisers.ipynb")
    assert params["datasets"][0] == "cifar100" and params["smoke"] is False and len(params["seeds"]) >= 3


def test_benchmark_rows_replace_the_flops_estimate(tmp_path):
    config = TrainConfig(dataset="cifar100", model="convnextv2_tiny", stem_stride=4, batch_size=256, epochs=10)
    flops = estimate.run_cost(config)  # 45,000 trained on, 5,000 held out select the epoch, 10,000 reported once
    assert flops.basis == "flops" and flops.images == 10 * 50_000 + 10_000
    assert estimate.split_sizes(config.replace(selection="test")) == (50_000, 10_000, 10_000)
    row = {"model": "convnextv2_tiny", "image_size": 32, "stem_stride": 4, "batch_size": 256, "mode": "ours-real",
           "images_per_second": 10_000.0, "device": "NVIDIA H100 80GB HBM3", "device_type": "cuda"}
    (tmp_path / "b.json").write_text(json.dumps([
        row, {**row, "mode": "packed-2", "images_per_second": 40_000.0},
        {**row, "images_per_second": 50.0, "device": "CPU AMD EPYC (2 threads)", "device_type": "cpu"}]))
    rows = estimate.load_benchmarks(tmp_path)
    assert len(rows) == 2  # a CPU row says nothing about an H100
    measured = estimate.run_cost(config, benchmarks=rows)
    assert measured.basis == "benchmark"
    assert measured.seconds == pytest.approx(estimate.RUN_OVERHEAD_S + 10 * 45_000 / 1e4 + (10 * 5_000 + 10_000) / 3e4)
    packed = estimate.run_cost(config, benchmarks=rows, packed=2)
    assert packed.seconds < measured.seconds
    assert "benchmark rows" in estimate.assumptions(rows)


def test_passed_parameters_win_over_smoke(monkeypatch):
    monkeypatch.setenv(paths.SMOKE_ENV, "1")
    ns = {"In": ["", "smoke: bool = False\nepochs: int = 30", "# Parameters\nepochs = 2\nlr: float = 0.5\n"],
          "smoke": False, "epochs": 2, "lr": 0.5, "seeds": [0, 1, 2], "dataset": "cifar10"}
    assert parameters.passed_parameters(ns) == {"epochs", "lr"}
    ch = chapter.start("04_x", ns, title="X", smoke=dict(epochs=10, seeds=[0]))
    assert ch.epochs == 2 and ch.seeds == [0] and ch.configuration == "smoke"
    assert ch.reductions == {"seeds": ([0, 1, 2], [0])}  # the banner never calls 2 the full value
    assert "`epochs`" not in ch.banner().data
    table = ch.settings()
    assert table.loc["epochs", "set by"] == "-p (passed)" and table.loc["seeds", "set by"] == "smoke"
    assert ch.record["passed_parameters"] == ["epochs", "lr"]


def test_every_smoke_key_is_a_parameter_and_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for name, reductions in designs.SMOKE.items():
        params = parameters.notebook_defaults(REPO / "book" / f"{name}.ipynb")
        assert set(reductions) <= set(params), name
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert all(f"`{key}`" in row for key in reductions), (name, row)
