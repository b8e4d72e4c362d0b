"""The book's GPU plan (ARCHITECTURE.md): every assumption is a named constant here; a run two chapters share is
counted once, in the first."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, NamedTuple

import pandas as pd

from ..complexity import training_cost
from ..config import TrainConfig
from ..data.registry import get_dataset_spec
from ..frozen import FAST_PATH_MAX_BYTES
from ..models import MODEL_VARIANTS
from ..parts import fast_path_allowed, loaded_images, split_sizes
from . import store
from .experiments import TRANSFER_CHAIN, chapter_groups, chapter_params, run_config, seeds_of

__all__ = ["ASSUMED_TFLOPS", "CHAPTER_LIMIT_S", "COMMAND_LIMIT_S", "COMPILE_WARMUP_S", "MARGIN", "NOTEBOOK_OVERHEAD_S",
           "RUN_OVERHEAD_S", "SETUP_S", "TOTAL_LIMIT_S", "ChapterPlan", "PlannedRun", "RunCost", "Window", "build_plan",
           "chapters", "command_seconds", "format_plan", "missing_runs", "read_benchmarks", "run_cost"]

#: the whole book, one chapter, one remote command (the device's limit: chapters 3-5 and the status page in one)
TOTAL_LIMIT_S, CHAPTER_LIMIT_S, COMMAND_LIMIT_S = 1500.0, 540.0, 600.0
#: a remote command before training: wheels installed, preflight imports, CUDA's start (7 s in the CPU rehearsal)
SETUP_S = 20.0
#: the GPU the estimates are for
GPU = "H100"
#: achieved bf16 TFLOP/s of a ConvNeXt training step at 32 px (about 6% of an H100's dense peak: depthwise
#: convolutions, norms and GELU are memory-bound); FLOPs = 2 x the counted MACs
ASSUMED_TFLOPS = 60.0
#: a training step costs this many forward passes (forward + backward); a frozen backbone only forward
TRAIN_FLOP_FACTOR, FROZEN_FLOP_FACTOR = 3.0, 1.0
#: per-step floor of a training step: kernel launches, about constant per block (atto, 12 blocks: 2.8 ms)
STEP_FLOOR_S, STEP_FLOOR_PER_BLOCK_S = 1.0e-3, 0.15e-3
#: an evaluation step is forward only: this much faster than a training step (rate and floor)
EVAL_SPEEDUP = 3.0
#: one step of a head on cached features (the frozen-backbone fast path)
HEAD_STEP_S = 0.5e-3
#: per run: model build, data from the decoded cache onto the GPU, first steps, final evaluation, files
RUN_OVERHEAD_S = 8.0
#: torch.compile warm-up of a model shape (train and eval graphs), once per shape and process
COMPILE_WARMUP_S = 30.0
#: per page: kernel, imports, tables, figures, publishing (13-17 s a smoke page in the CPU rehearsal)
NOTEBOOK_OVERHEAD_S = 20.0
#: benchmark rows of our own training loop on real data
BENCHMARK_MODE = "ours-real"
#: only rows measured on these GPUs stand in for the estimate (a CPU row says nothing about an H100)
BENCHMARK_GPUS = ("H100", "H200")
#: a window starts a run only if its corrected estimate times this ends before the deadline
MARGIN = 1.2


class RunCost(NamedTuple):
    """Images a run processes (at most: early stopping may end it sooner), its seconds, ``"benchmark"``/``"flops"``."""

    images: int
    seconds: float
    basis: str


def _fast_path(config: Any) -> bool:
    """Whether the frozen-backbone fast path runs: allowed, and its feature cache fits."""
    if not fast_path_allowed(config):
        return False
    side = max(1, config.image_size // (config.stem_stride * 8))  # the last stage's map; the linear head pools it
    per_image = 4 * MODEL_VARIANTS[config.model].dims[-1] * (1 if config.head == "linear" else side * side)
    return per_image * sum(split_sizes(config)) <= FAST_PATH_MAX_BYTES


def compile_shape(config: Any) -> tuple | None:
    """What torch.compile compiles once per process (None: nothing; a head on cached features is eager)."""
    if config.compile is False or _fast_path(config):
        return None
    return (config.model, config.image_size, config.stem_stride, config.norm, config.head, config.freeze_backbone)


def read_benchmarks(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every row of the ``*.json`` files in ``folder`` (default ``<repo>/benchmarks/results``)."""
    folder = Path(folder) if folder is not None else store.repo_root() / "benchmarks" / "results"
    data = [json.loads(file.read_text()) for file in sorted(folder.glob("*.json"))]  # a missing folder: none
    return [row for d in data for row in (d.get("rows", []) if isinstance(d, dict) else d)]


def _gpu_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if isinstance(r, dict) and r.get("images_per_second")
            and any(gpu in str(r.get("device", "")) for gpu in BENCHMARK_GPUS)]


def _measured(config: Any, rows: Sequence[dict[str, Any]], packed: int) -> float | None:
    """Training images/s of a run from the benchmark rows (a ``packed-K`` row's sum over its K runs, / K)."""
    mode = BENCHMARK_MODE if packed <= 1 else f"packed-{packed}"
    match = [r for r in _gpu_rows(rows) if r.get("mode") == mode and r.get("model") == config.model
             and int(r.get("image_size", -1)) == config.image_size and int(r.get("stem_stride", -1)) == config.stem_stride]
    if not match:
        return None
    best = min(match, key=lambda r: abs(math.log(int(r.get("batch_size") or 1) / config.batch_size)))
    return float(best["images_per_second"]) / packed


def run_cost(config: Any, *, benchmarks: Sequence[dict[str, Any]] = (), packed: int = 1) -> RunCost:
    """Images and estimated GPU seconds of a run's maximum epochs (overheads included, compile not), one of
    ``packed`` runs sharing the GPU; each epoch evaluates the selection split (and the reported one if asked)."""
    n_train, n_select, n_test = split_sizes(config)
    mixing = config.mixup > 0 or config.cutmix > 0
    steps = n_train // config.batch_size if mixing else math.ceil(n_train / config.batch_size)
    steps = min(steps, config.max_steps_per_epoch or steps)
    separate = config.selection == "holdout"
    n_evaluated = n_select + (n_test if separate and config.test_every_epoch else 0)  # evaluated every epoch
    n_final = n_test if separate and not config.test_every_epoch else 0  # the reported split, once
    eval_steps = math.ceil(n_evaluated / config.batch_size)
    seen = min(n_train, steps * config.batch_size)
    images = config.epochs * (seen + n_evaluated) + n_final
    fwd = 2.0 * training_cost(config, config.max_classes or get_dataset_spec(config.dataset).num_classes).macs
    rate = ASSUMED_TFLOPS * 1e12 / packed  # without packed-K rows: K runs share the GPU's rate, nothing gained
    floor = STEP_FLOOR_S + STEP_FLOOR_PER_BLOCK_S * sum(MODEL_VARIANTS[config.model].depths)
    if _fast_path(config):  # features once, then the head alone
        n_all = loaded_images(config)
        feature_pass = n_all * fwd / rate + math.ceil(n_all / config.batch_size) * floor / EVAL_SPEEDUP
        seconds = feature_pass + config.epochs * (steps + eval_steps) * HEAD_STEP_S
        return RunCost(images + n_all, RUN_OVERHEAD_S + seconds, "flops")
    measured = _measured(config, benchmarks, packed)
    if measured:
        seconds = config.epochs * seen / measured + (config.epochs * n_evaluated + n_final) / (measured * EVAL_SPEEDUP)
        return RunCost(images, RUN_OVERHEAD_S + seconds, "benchmark")
    factor = FROZEN_FLOP_FACTOR if config.freeze_backbone else TRAIN_FLOP_FACTOR
    train_step = max(factor * fwd * config.batch_size / rate, floor)
    eval_step = max(fwd * config.batch_size / rate, floor / EVAL_SPEEDUP)
    final_steps = math.ceil(n_final / config.batch_size)
    seconds = config.epochs * (steps * train_step + eval_steps * eval_step) + final_steps * eval_step
    return RunCost(images, RUN_OVERHEAD_S + seconds, "flops")


def assumptions(benchmarks: Sequence[dict[str, Any]]) -> str:
    """The assumptions behind the estimates, named, for the plan's output."""
    rows = _gpu_rows(benchmarks)
    basis = (f"measured images/s from {len(rows)} benchmark rows (mode {BENCHMARK_MODE}) where a model "
             "matches, else " if rows else f"no {'/'.join(BENCHMARK_GPUS)} rows in benchmarks/results/*.json: ")
    return (f"estimated {GPU} seconds: {basis}FLOPs at ASSUMED_TFLOPS={ASSUMED_TFLOPS:g} TFLOP/s "
            f"(training {TRAIN_FLOP_FACTOR:g}x forward), per-step floor STEP_FLOOR_S={STEP_FLOOR_S * 1e3:g} ms + "
            f"STEP_FLOOR_PER_BLOCK_S={STEP_FLOOR_PER_BLOCK_S * 1e3:g} ms per block, "
            f"RUN_OVERHEAD_S={RUN_OVERHEAD_S:g} s per run, COMPILE_WARMUP_S={COMPILE_WARMUP_S:g} s per compiled "
            f"model shape and notebook, NOTEBOOK_OVERHEAD_S={NOTEBOOK_OVERHEAD_S:g} s per page "
            "(convnext_report/report/plan.py); measured: the stored runs' wall time, and where they ran")


@dataclass
class PlannedRun:
    """One run of a chapter as the plan sees it; ``shared_with``: an earlier chapter that counts it."""

    chapter: str
    group: str
    label: str
    seed: int
    config: TrainConfig
    key: str
    images: int = 0
    seconds: float = 0.0
    shared_with: str | None = None
    entry: store.Entry | None = None

    @property
    def stored(self) -> bool:
        return self.entry is not None


@dataclass
class ChapterPlan:
    """A chapter's runs and its estimate (its page, runs, compile warm-ups)."""

    name: str
    runs: list[PlannedRun] = field(default_factory=list)

    @property
    def counted(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.shared_with is None]

    @property
    def seconds(self) -> float:
        return NOTEBOOK_OVERHEAD_S + _training_seconds(self.counted)

    @property
    def seconds_to_train(self) -> float:
        return NOTEBOOK_OVERHEAD_S + _training_seconds([r for r in self.counted if not r.stored])


def _training_seconds(runs: Sequence[PlannedRun]) -> float:
    """The runs' estimates and a compile warm-up per shape (one process trains them)."""
    shapes = {compile_shape(r.config) for r in runs} - {None}
    return COMPILE_WARMUP_S * len(shapes) + sum(r.seconds for r in runs)


def command_seconds(plans: Sequence[ChapterPlan], names: Sequence[str], pages: int) -> float:
    """One remote command for chapters ``names``: setup, their counted runs in one process, ``pages`` pages."""
    runs = [r for p in plans if p.name in names for r in p.counted]
    return SETUP_S + _training_seconds(runs) + pages * NOTEBOOK_OVERHEAD_S


def chapters() -> list[str]:
    """The numbered chapters of ``<repo>/book``, in order."""
    return sorted(p.stem for p in (store.repo_root() / "book").glob("*.ipynb") if p.stem[:2].isdigit())


def build_plan(*, smoke: bool = False, files: Sequence[str | Path] = (), benchmarks: Sequence[dict] = (),
               packed: int = 1, params: Mapping[str, Mapping[str, Any]] | None = None,
               estimate: bool = True) -> list[ChapterPlan]:
    """Every numbered chapter's plan, in book order, with its parameters as the tools pass them
    (:func:`.experiments.chapter_params`) or ``params[chapter]``; ``estimate=False``: keys only."""
    values = {name: dict((params or {}).get(name) or chapter_params(name, smoke=smoke, files=files))
              for name in chapters()}
    stored = {e.key: e for e in store.entries(smoke=smoke)}
    seen: dict[str, str] = {}
    plans = []
    for name, p in values.items():
        plan = ChapterPlan(name)
        for group, variants in chapter_groups(name, p, params3=values.get(TRANSFER_CHAIN[0])).items():
            for label, changes in variants.items():
                for seed in seeds_of(p):
                    config = run_config(p, changes, seed=seed, extra={"label": label})
                    key = store.run_key(config)
                    cost = run_cost(config, benchmarks=benchmarks, packed=packed) if estimate else RunCost(0, 0.0, "")
                    plan.runs.append(PlannedRun(name, group, label, seed, config, key, cost.images, cost.seconds,
                                                shared_with=seen.get(key), entry=stored.get(key)))
                    seen.setdefault(key, name)
        plans.append(plan)
    return plans


def missing_runs(names: Sequence[str], *, smoke: bool, files: Sequence[str | Path] = (),
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> list[PlannedRun]:
    """The runs of chapters ``names`` that the result store does not have (each key once)."""
    plans = build_plan(smoke=smoke, files=files, params=params, estimate=False)
    return [r for plan in plans if plan.name in names for r in plan.counted if not r.stored]


def _measured_columns(runs: Sequence[PlannedRun]) -> dict[str, Any]:
    """The stored runs' measured seconds beside their estimate, and where they ran (empty: none stored)."""
    stored = [r for r in runs if r.entry is not None and r.entry.meta.get("wall_time_seconds")]
    measured, estimated = sum(r.entry.meta["wall_time_seconds"] for r in stored), sum(r.seconds for r in stored)
    ratio = f"{measured / max(estimated, 1e-9):.2f}x"
    return {"measured s": f"{measured:.0f}", "est. s": f"{estimated:.0f}", "ratio": ratio,
            "on": ", ".join(sorted({str(r.entry.meta.get("trained_on")) for r in stored}))} if stored else {}


def _aligned(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned text: the chapter first and left-aligned (as the index), a missing value blank."""
    return pd.DataFrame(rows, columns=columns).set_index("chapter").to_string(na_rep="", index_names=False)


def format_plan(plans: list[ChapterPlan], benchmarks: Sequence[dict] = (), *, runs: bool = False) -> str:
    """The plan as text: every run (``runs``), the assumptions, a row per chapter (its stored runs' measured
    seconds beside their estimate), chapters 3-5 as one remote command, last ``total: N s``."""
    measured = ["measured s", "est. s", "ratio", "on"]
    listed = _aligned([{"chapter": r.chapter, "group": r.group, "label": r.label, "seed": r.seed, "key": r.key[:8],
                        "images": f"{r.images:,}", "est. s": round(r.seconds), "counted in": r.shared_with,
                        **_measured_columns([r])} for p in plans for r in p.runs],
                      ["chapter", "group", "label", "seed", "key", "images", "counted in", *measured])
    chapters = _aligned([{"chapter": p.name, "runs": len(p.counted), "shared": len(p.runs) - len(p.counted),
                          "stored": sum(r.stored for r in p.counted), "images": f"{sum(r.images for r in p.counted):,}",
                          f"est. {GPU} s": round(p.seconds), "to train s": round(p.seconds_to_train),
                          **_measured_columns(p.counted)} for p in plans],
                        ["chapter", "runs", "shared", "stored", "images", f"est. {GPU} s", "to train s", *measured])
    chain = command_seconds(plans, TRANSFER_CHAIN, pages=len(TRANSFER_CHAIN) + 1)
    return "\n".join([*([listed, ""] if runs else []), assumptions(benchmarks), "", chapters,
                      f"{'+'.join(n[:2] for n in TRANSFER_CHAIN)} and the status page in one remote command: "
                      f"{chain:.0f} s, x{MARGIN:g} = {chain * MARGIN:.0f} s (limit {COMMAND_LIMIT_S:.0f} s); per "
                      f"chapter limit {CHAPTER_LIMIT_S:.0f} s, book limit {TOTAL_LIMIT_S:.0f} s",
                      f"total: {sum(p.seconds for p in plans):.0f} s"])


class Window:
    """A deadline: a run starts only if :func:`run_cost` plus a compile warm-up (new shape, or packed), times the
    mean measured/estimated ratio this window saw (of that shape if any), times :data:`MARGIN`, ends before it."""

    def __init__(self, deadline: float, *, benchmarks: Sequence[dict] = (), packed: int = 1) -> None:
        self.deadline, self.benchmarks, self.packed = deadline, list(benchmarks), packed
        self.ratios: dict[tuple | None, list[float]] = {}
        self.started: dict[str, tuple[float, float]] = {}  #: key -> (estimate, corrected estimate)
        self.compiled: set[tuple | None] = set()

    def may_start(self, key: str, config: Any) -> bool:
        """Whether run ``key`` ends before the deadline if it starts now; if so, it counts as started."""
        shape = compile_shape(config)
        estimate = run_cost(config, benchmarks=self.benchmarks, packed=self.packed).seconds + \
            (COMPILE_WARMUP_S if shape is not None and (self.packed > 1 or shape not in self.compiled) else 0.0)
        ratios = self.ratios.get(shape) or [r for rs in self.ratios.values() for r in rs] or [1.0]
        corrected = estimate * mean(ratios) * MARGIN
        if time.time() + corrected > self.deadline:
            return False
        self.started[key] = (estimate, corrected)
        self.compiled.add(shape)
        return True

    def finished(self, key: str, config: Any, seconds: float) -> dict[str, float]:
        """Learn from run ``key``, which took ``seconds``; its estimate, corrected estimate and seconds."""
        estimate, corrected = self.started[key]
        self.ratios.setdefault(compile_shape(config), []).append(seconds / max(estimate, 1e-9))
        return {"estimate_s": round(estimate, 1), "corrected_s": round(corrected, 1), "measured_s": round(seconds, 1)}
