"""The book's GPU plan: every chapter's runs (built as the chapters build them), their estimated
seconds, the budget's limits, and a window's deadline (:class:`Window`).

A run's estimate is its images over the measured rate of ``benchmarks/results/*.json`` where a row of
:data:`BENCHMARK_GPUS` matches, else FLOPs at :data:`ASSUMED_TFLOPS` with a per-step floor; every run
pays :data:`RUN_OVERHEAD_S`, every compiled shape :data:`COMPILE_WARMUP_S`, every notebook
:data:`NOTEBOOK_OVERHEAD_S`. A run two chapters share is counted once, in the first.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from ..complexity import count_macs
from ..config import TrainConfig
from ..data.registry import get_dataset_spec
from ..frozen import FAST_PATH_MAX_BYTES
from ..models import MODEL_VARIANTS, build_model
from ..parts import fast_path_allowed
from . import store
from .experiments import TRANSFER_CHAIN, chapter_groups, run_config, seeds_of
from .parameters import chapter_params

__all__ = ["ASSUMED_TFLOPS", "BENCHMARK_GPUS", "BENCHMARK_MODE", "CHAIN_LIMIT_S", "CHAPTER_LIMIT_S", "COMPILE_WARMUP_S",
           "MARGIN", "NOTEBOOK_OVERHEAD_S", "RUN_OVERHEAD_S", "TOTAL_LIMIT_S", "ChapterPlan", "PlannedRun", "RunCost",
           "Window", "build_plan", "chapters", "compile_shape", "format_plan", "missing_runs", "read_benchmarks",
           "run_cost", "split_sizes"]

#: the whole book in GPU seconds (about 25 minutes of a 15-30 minute window)
TOTAL_LIMIT_S = 1500.0
#: one chapter, and chapters 3-5 together: one remote command (at most 10 minutes, 9 planned)
CHAPTER_LIMIT_S = CHAIN_LIMIT_S = 540.0
#: the GPU the estimates are for
GPU = "H100"
#: achieved bf16 rate (FLOP/s / 1e12) of a ConvNeXt training step at 32 px (about 6% of an H100's dense
#: peak: depthwise convolutions, norms and GELU are memory-bound); FLOPs = 2 x the counted MACs
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
#: per notebook: kernel start, imports, decoding a data set into the cache the first time
NOTEBOOK_OVERHEAD_S = 20.0
#: benchmark rows of our own training loop on real data
BENCHMARK_MODE = "ours-real"
#: only rows measured on these GPUs stand in for the estimate (a CPU row says nothing about an H100)
BENCHMARK_GPUS = ("H100", "H200")
#: a window starts a run only if its corrected estimate times this ends before the deadline
MARGIN = 1.2


@dataclass(frozen=True)
class RunCost:
    """Images a run processes (at most: early stopping may end it sooner), its estimated seconds, and
    ``basis``: ``"benchmark"`` or ``"flops"``."""

    images: int
    seconds: float
    basis: str


def split_sizes(config: Any) -> tuple[int, int, int]:
    """(images trained on, images that select the epoch, images reported) of a config (with
    ``selection="test"`` the reported split selects: the second number is the third)."""
    spec = get_dataset_spec(config.dataset)
    classes = config.max_classes or spec.num_classes
    train, test = spec.per_class["train"], spec.per_class["test"]
    per_class = min(config.train_per_class or train, train)
    reported = classes * min(config.test_per_class or test, test)
    if config.selection != "holdout":
        return classes * per_class, reported, reported
    held = min(max(1, round(per_class * config.holdout_fraction)), per_class - 1)
    return classes * (per_class - held), classes * held, reported


@lru_cache(maxsize=None)
def _forward_flops(model: str, image_size: int, stem_stride: int, num_classes: int, head: str,
                   head_num_heads: int) -> float:
    """FLOPs of one forward pass of one image, counted on the meta device."""
    with torch.device("meta"):
        net = build_model(model, num_classes, stem_stride=stem_stride, head=head, head_num_heads=head_num_heads)
    return 2.0 * count_macs(net, image_size)


def compile_shape(config: Any) -> tuple | None:
    """What torch.compile compiles once per process (None: not compiled)."""
    if config.compile is False:
        return None
    return (config.model, config.image_size, config.stem_stride, config.norm, config.head, config.freeze_backbone)


def read_benchmarks(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every row of the ``*.json`` files in ``folder`` (default ``<repo>/benchmarks/results``)."""
    folder = Path(folder) if folder is not None else store.repo_root() / "benchmarks" / "results"
    rows: list[dict[str, Any]] = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(file.read_text())
        rows += data.get("rows", []) if isinstance(data, dict) else data
    return rows


def _gpu_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if isinstance(r, dict) and r.get("images_per_second")
            and any(gpu in str(r.get("device", "")) for gpu in BENCHMARK_GPUS)]


def _measured(config: Any, rows: Sequence[dict[str, Any]], packed: int) -> float | None:
    """Training images/s of a run from the benchmark rows (aggregate/K when K runs share the GPU)."""
    mode = BENCHMARK_MODE if packed <= 1 else f"packed-{packed}"
    match = [r for r in _gpu_rows(rows) if r.get("mode") == mode and r.get("model") == config.model
             and int(r.get("image_size", -1)) == config.image_size and int(r.get("stem_stride", -1)) == config.stem_stride]
    if not match:
        return None
    best = min(match, key=lambda r: abs(math.log(int(r.get("batch_size") or 1) / config.batch_size)))
    return float(best["images_per_second"])


def run_cost(config: Any, *, benchmarks: Sequence[dict[str, Any]] = (), packed: int = 1) -> RunCost:
    """Images and estimated GPU seconds of a run's maximum epochs (overheads included, compile not): each
    epoch trains and evaluates the selection split (and the reported one if ``test_every_epoch``)."""
    n_train, n_select, n_test = split_sizes(config)
    classes = config.max_classes or get_dataset_spec(config.dataset).num_classes
    mixing = config.mixup > 0 or config.cutmix > 0
    steps = n_train // config.batch_size if mixing else math.ceil(n_train / config.batch_size)
    steps = min(steps, config.max_steps_per_epoch or steps)
    separate = config.selection == "holdout"
    n_evaluated = n_select + (n_test if separate and config.test_every_epoch else 0)  # evaluated every epoch
    n_final = n_test if separate and not config.test_every_epoch else 0  # the reported split, once
    eval_steps = math.ceil(n_evaluated / config.batch_size)
    seen = min(n_train, steps * config.batch_size)
    images = config.epochs * (seen + n_evaluated) + n_final
    fwd = _forward_flops(config.model, config.image_size, config.stem_stride, classes, config.head,
                         config.head_num_heads)
    rate = ASSUMED_TFLOPS * 1e12
    floor = STEP_FLOOR_S + STEP_FLOOR_PER_BLOCK_S * sum(MODEL_VARIANTS[config.model].depths)
    n_all = n_train + n_select + (n_test if separate else 0)
    if fast_path_allowed(config) and _features_fit(config, n_all):  # features once, then the head alone
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


def _features_fit(config: Any, n_images: int) -> bool:
    """Whether the frozen-backbone feature cache fits (pooled features for the linear head)."""
    width = MODEL_VARIANTS[config.model].dims[-1]
    side = max(1, config.image_size // (config.stem_stride * 8))
    per_image = width * (1 if config.head == "linear" else side * side) * 4
    return per_image * n_images <= FAST_PATH_MAX_BYTES


def assumptions(benchmarks: Sequence[dict[str, Any]]) -> str:
    """The assumptions behind the estimates, named, for the plan's output."""
    rows = _gpu_rows(benchmarks)
    basis = (f"measured images/s from {len(rows)} benchmark rows (mode {BENCHMARK_MODE}) where a model "
             "matches, else " if rows else f"no {'/'.join(BENCHMARK_GPUS)} rows in benchmarks/results/*.json: ")
    return (f"estimated {GPU} seconds: {basis}FLOPs at ASSUMED_TFLOPS={ASSUMED_TFLOPS:g} TFLOP/s "
            f"(training {TRAIN_FLOP_FACTOR:g}x forward), per-step floor STEP_FLOOR_S={STEP_FLOOR_S * 1e3:g} ms + "
            f"STEP_FLOOR_PER_BLOCK_S={STEP_FLOOR_PER_BLOCK_S * 1e3:g} ms per block, "
            f"RUN_OVERHEAD_S={RUN_OVERHEAD_S:g} s per run, COMPILE_WARMUP_S={COMPILE_WARMUP_S:g} s per compiled "
            f"model shape and notebook, NOTEBOOK_OVERHEAD_S={NOTEBOOK_OVERHEAD_S:g} s per notebook "
            "(convnext_report/report/plan.py)")


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
    stored: bool = False


@dataclass
class ChapterPlan:
    """A chapter's runs and its estimate (notebook overhead, runs, compile warm-ups)."""

    name: str
    runs: list[PlannedRun] = field(default_factory=list)

    @property
    def counted(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.shared_with is None]

    def _seconds(self, runs: list[PlannedRun]) -> float:
        shapes = {compile_shape(r.config) for r in runs} - {None}
        return NOTEBOOK_OVERHEAD_S + COMPILE_WARMUP_S * len(shapes) + sum(r.seconds for r in runs)

    @property
    def seconds(self) -> float:
        return self._seconds(self.counted)

    @property
    def seconds_to_train(self) -> float:
        return self._seconds([r for r in self.counted if not r.stored])


def chapters() -> list[str]:
    """The numbered chapters of ``<repo>/book``, in order."""
    return sorted(p.stem for p in (store.repo_root() / "book").glob("*.ipynb") if p.stem[:2].isdigit())


def build_plan(*, smoke: bool = False, files: Sequence[str | Path] = (), benchmarks: Sequence[dict] = (),
               packed: int = 1, params: Mapping[str, Mapping[str, Any]] | None = None,
               estimate: bool = True) -> list[ChapterPlan]:
    """Every numbered chapter's plan, in book order, with its parameters as the tools pass them
    (:func:`.parameters.chapter_params`) or ``params[chapter]``; ``estimate=False``: keys only."""
    values = {name: dict((params or {}).get(name) or chapter_params(name, smoke=smoke, files=files))
              for name in chapters()}
    stored = {e.key for e in store.entries(smoke=smoke)}
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
                                                shared_with=seen.get(key), stored=key in stored))
                    seen.setdefault(key, name)
        plans.append(plan)
    return plans


def missing_runs(names: Sequence[str], *, smoke: bool, files: Sequence[str | Path] = (),
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> list[PlannedRun]:
    """The runs of chapters ``names`` that the result store does not have (each key once)."""
    plans = build_plan(smoke=smoke, files=files, params=params, estimate=False)
    return [r for plan in plans if plan.name in names for r in plan.counted if not r.stored]


def format_plan(plans: list[ChapterPlan], benchmarks: Sequence[dict] = ()) -> str:
    """The plan as text: assumptions, a line per chapter, chapters 3-5 together, last ``total: N s``."""
    lines = [assumptions(benchmarks), "",
             f"{'chapter':<20} {'runs':>5} {'shared':>6} {'stored':>6} {'images':>12} {f'est. {GPU} s':>12} "
             f"{'to train s':>10}"]
    for p in plans:
        lines.append(f"{p.name:<20} {len(p.counted):>5} {len(p.runs) - len(p.counted):>6} "
                     f"{sum(r.stored for r in p.counted):>6} {sum(r.images for r in p.counted):>12,} "
                     f"{p.seconds:>12.0f} "
                     f"{p.seconds_to_train:>10.0f}")
    chain = sum(p.seconds for p in plans if p.name in TRANSFER_CHAIN)
    lines.append(f"{'+'.join(n[:2] for n in TRANSFER_CHAIN)} in one remote command: {chain:.0f} s "
                 f"(limit {CHAIN_LIMIT_S:.0f} s); per chapter limit {CHAPTER_LIMIT_S:.0f} s, book limit "
                 f"{TOTAL_LIMIT_S:.0f} s")
    lines.append(f"total: {sum(p.seconds for p in plans):.0f} s")
    return "\n".join(lines)


class Window:
    """A deadline: a run starts only if its estimate ends before it. The estimate is :func:`run_cost`
    (``packed`` runs at once) plus the compile warm-up (of a new shape; of every run when each has its own
    process), times the mean measured/estimated ratio of the runs this window finished (of that shape
    if any; 1 before the first), times :data:`MARGIN`."""

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
