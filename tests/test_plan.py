"""The GPU plan of the committed notebooks: budget, estimates, smoke files, parameter files, a window's deadline."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml

from convnext_report import parts
from convnext_report.cli import main
from convnext_report.config import TrainConfig
from convnext_report.report import experiments, plan, store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _folders(book_folders):
    """Every test here works in temporary book folders."""


@pytest.fixture(scope="module")
def book_plan() -> list[plan.ChapterPlan]:
    """The plan as ``python -m convnext_report plan`` makes it (with any GPU benchmark rows committed)."""
    return plan.build_plan(benchmarks=plan.read_benchmarks())


def test_the_book_fits_its_gpu_budget(book_plan):
    seconds = {p.name: p.seconds for p in book_plan}
    assert sum(seconds.values()) <= plan.TOTAL_LIMIT_S, seconds
    assert all(s <= plan.CHAPTER_LIMIT_S for s in seconds.values()), seconds
    # chapters 3-5 and the status page in one remote command (the backbone's weights exist only there), with
    # the window's margin on top of the plan's estimate
    group = plan.command_seconds(book_plan, experiments.TRANSFER_CHAIN, pages=len(experiments.TRANSFER_CHAIN) + 1)
    assert group * plan.MARGIN <= plan.COMMAND_LIMIT_S, group


def test_compared_numbers_have_three_seeds_and_the_source_recipe_beside_ours(book_plan):
    by_name = {p.name: p for p in book_plan}
    for name in experiments.TRAINING_CHAPTERS[1:]:
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


def test_the_plan_shows_what_stored_runs_measured_beside_their_estimate(book_plan, tmp_path):
    """After a window, a stored run's wall time and device stand next to its estimate, per chapter and per run."""
    plans = copy.deepcopy(book_plan)
    four = next(p for p in plans if p.name == "04_baseline")
    for r in four.counted:
        r.entry = store.Entry(tmp_path, {"key": r.key, "wall_time_seconds": 3 * r.seconds, "trained_on": "NVIDIA H200"})
    text = plan.format_plan(plans, runs=True)
    listed, chapters = text.split(plan.assumptions(()))  # every run, then a row per chapter
    [line] = [line for line in chapters.splitlines() if line.startswith("04_baseline ")]
    estimated = sum(r.seconds for r in four.counted)
    assert line.split()[-5:] == [f"{3 * estimated:.0f}", f"{estimated:.0f}", "3.00x", "NVIDIA", "H200"], line
    assert "measured s" in chapters and "x " not in next(n for n in chapters.splitlines() if n.startswith("06_opt"))
    run = four.counted[0]
    [line] = [line for line in listed.splitlines() if run.key[:8] in line]
    assert line.split()[-5:] == [f"{3 * run.seconds:.0f}", f"{run.seconds:.0f}", "3.00x", "NVIDIA", "H200"], line


def test_notebook_defaults_are_read_without_a_kernel():
    params = experiments.defaults("06_optimisers")  # papermill.inspect_notebook
    assert params["datasets"][0] == "cifar100" and params["smoke"] is False and len(params["seeds"]) >= 3
    assert experiments.defaults("07_normalisation")["recipes"] == {"source": "radam", "small-image": "adamw"}


def test_benchmark_rows_replace_the_flops_estimate(tmp_path):
    config = TrainConfig(dataset="cifar100", model="convnextv2_tiny", stem_stride=4, batch_size=256, epochs=10)
    flops = plan.run_cost(config)  # 45,000 trained on, 5,000 held out select the epoch, 10,000 reported once
    assert flops.basis == "flops" and flops.images == 10 * 50_000 + 10_000
    assert parts.split_sizes(config.replace(selection="test")) == (50_000, 10_000, 10_000)
    row = {"model": "convnextv2_tiny", "image_size": 32, "stem_stride": 4, "batch_size": 256, "mode": "ours-real",
           "images_per_second": 10_000.0, "device": "NVIDIA H100 80GB HBM3", "device_type": "cuda"}
    (tmp_path / "b.json").write_text(json.dumps([
        row, {**row, "mode": "packed-2", "images_per_second": 40_000.0},
        {**row, "images_per_second": 50.0, "device": "CPU AMD EPYC (2 threads)", "device_type": "cpu"}]))
    rows = plan.read_benchmarks(tmp_path)
    assert len(rows) == 3 and plan.run_cost(config, benchmarks=rows[2:]).basis == "flops"  # a CPU row says nothing
    measured = plan.run_cost(config, benchmarks=rows)
    assert measured.basis == "benchmark"
    assert measured.seconds == pytest.approx(plan.RUN_OVERHEAD_S + 10 * 45_000 / 1e4 + (10 * 5_000 + 10_000) / 3e4)
    packed = plan.run_cost(config, benchmarks=rows, packed=2)
    assert packed.seconds < measured.seconds
    assert "2 benchmark rows" in plan.assumptions(rows)


def test_smoke_files_hold_declared_parameters_and_the_plan_reads_them():
    for name in experiments.TRAINING_CHAPTERS:
        smoke = yaml.safe_load(experiments.smoke_file(name).read_text())
        assert smoke["smoke"] is True and set(smoke) <= set(experiments.defaults(name)), name
    plans = {p.name: p for p in plan.build_plan(smoke=True, estimate=False)}
    six = plans["06_optimisers"].runs
    assert {r.config.model for r in six} == {"convnextv2_atto"} and {r.config.max_classes for r in six} == {20}
    assert {r.seed for r in plans["04_baseline"].runs} == {0, 1}  # the smoke file's seeds
    assert main(["plan", "--smoke"]) == 0


def test_parameter_files_go_to_the_chapters_that_declare_them(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("epochs: 3\nablation: true\n")
    assert experiments.passed("05_improved", smoke=True, files=[extra])["ablation"] is True
    assert experiments.passed("04_baseline", files=[extra]) == {"smoke": False, "epochs": 3}  # smoke: always
    assert experiments.passed("02_architecture", smoke=True, files=[extra]) == {}  # no smoke file, no epochs
    experiments.check_files([extra])
    (tmp_path / "typo.yaml").write_text("epochs: 3\nlrr: 0.1\n")
    with pytest.raises(ValueError, match=r"\['lrr'\] is not a parameter of any chapter"):
        experiments.check_files([extra, tmp_path / "typo.yaml"])
    five = {p.name: p for p in plan.build_plan(smoke=True, files=[extra], estimate=False)}["05_improved"]
    assert {r.group for r in five.runs} == {"improved", "ablation"} and {r.config.epochs for r in five.runs} == {3}


def test_changing_dyt_alpha_init_retrains_no_layernorm_run():
    """The plan of chapter 7 with another dyt_alpha_init: only its DyT runs get new keys (issue 14)."""
    params = experiments.chapter_params("07_normalisation", smoke=True)
    before, after = ({r.key: r.config.norm for r in next(p for p in plan.build_plan(
        smoke=True, params={"07_normalisation": {**params, "dyt_alpha_init": alpha}}, estimate=False)
        if p.name == "07_normalisation").runs} for alpha in (0.5, 1.0))
    layernorm = [{k for k, norm in keys.items() if norm == "layernorm"} for keys in (before, after)]
    assert layernorm[0] == layernorm[1]
    assert not {k for k, norm in after.items() if norm == "dyt"} & set(before)


def test_a_window_starts_only_what_ends_before_its_deadline(monkeypatch):
    config = TrainConfig(dataset="cifar100", model="convnextv2_atto", stem_stride=2, epochs=2, max_classes=10,
                         train_per_class=50, test_per_class=10)
    seconds = plan.run_cost(config).seconds + plan.COMPILE_WARMUP_S  # the first run compiles its shape
    monkeypatch.setattr(plan.time, "time", lambda: 1000.0)
    tight = plan.Window(1000.0 + seconds * plan.MARGIN - 1)
    assert not tight.may_start("a", config) and "a" not in tight.started
    window = plan.Window(1000.0 + 1e6)
    assert window.may_start("a", config)
    assert window.started["a"] == (pytest.approx(seconds), pytest.approx(seconds * plan.MARGIN))
    assert window.finished("a", config, 2 * seconds)["measured_s"] == round(2 * seconds, 1)
    # the next run of that shape: no warm-up in this process, and twice the plan's pace, as measured
    assert window.may_start("b", config.replace(seed=1))
    later = seconds - plan.COMPILE_WARMUP_S
    assert window.started["b"] == (pytest.approx(later), pytest.approx(later * 2 * plan.MARGIN))
