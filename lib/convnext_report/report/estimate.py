"""How long a run takes on the GPU the book is sized for: every assumption in one place.

With measured throughput (``benchmarks/results/*.json`` rows ``model, image_size, stem_stride,
batch_size, mode, images_per_second``; mode :data:`BENCHMARK_MODE`, or ``packed-K`` for K runs
trained side by side), a run's time is its images over that rate. Without, it comes from FLOPs
counted with ``FlopCounterMode`` on the meta device at :data:`ASSUMED_TFLOPS`, never faster than
a per-step floor (small models at 32 px are launch-bound). Every run pays :data:`RUN_OVERHEAD_S`;
every model shape a chapter compiles pays :data:`COMPILE_WARMUP_S` once; every notebook
:data:`NOTEBOOK_OVERHEAD_S`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..complexity import count_macs
from ..data.registry import get_dataset_spec
from ..frozen import FAST_PATH_MAX_BYTES
from ..models import MODEL_VARIANTS, build_model
from ..parts import fast_path_allowed

__all__ = [
    "ASSUMED_TFLOPS", "BENCHMARK_GPUS", "BENCHMARK_MODE", "COMPILE_WARMUP_S", "EVAL_SPEEDUP", "GPU", "HEAD_STEP_S", "NOTEBOOK_OVERHEAD_S",
    "RUN_OVERHEAD_S", "SPLIT_PER_CLASS", "STEP_FLOOR_PER_BLOCK_S", "STEP_FLOOR_S", "RunCost", "assumptions",
    "compile_shape", "forward_gflops", "load_benchmarks", "run_cost", "split_sizes",
]

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
#: torch.compile warm-up of a model shape (train and eval graphs), once per shape and notebook
COMPILE_WARMUP_S = 30.0
#: per notebook: kernel start, imports, decoding a data set into the cache the first time
NOTEBOOK_OVERHEAD_S = 20.0
#: benchmark rows of our own training loop on real data
BENCHMARK_MODE = "ours-real"
#: only rows measured on these GPUs stand in for the estimate (a CPU row says nothing about an H100)
BENCHMARK_GPUS = ("H100", "H200")
#: images per class of the train and test splits (the registry has no counts)
SPLIT_PER_CLASS = {"tiny-imagenet-32": (500, 50), "tiny-imagenet": (500, 50), "cifar10": (5000, 1000),
                   "cifar100": (500, 100)}


@dataclass(frozen=True)
class RunCost:
    """Images a run processes (at most: early stopping may end it sooner) and its estimated seconds."""

    images: int
    seconds: float
    basis: str  #: "benchmark" or "flops"


def split_sizes(config: Any) -> tuple[int, int, int]:
    """(images trained on, images that select the epoch, images reported) a config selects.

    With ``selection="holdout"`` a class-balanced ``holdout_fraction`` of the training split selects
    the epoch; with ``"test"`` the reported split does (then it is the second number too).
    """
    spec = get_dataset_spec(config.dataset)
    classes = config.max_classes or spec.num_classes
    train, test = SPLIT_PER_CLASS[spec.name]
    per_class = min(config.train_per_class or train, train)
    reported = classes * min(config.test_per_class or test, test)
    if config.selection != "holdout":
        return classes * per_class, reported, reported
    held = min(max(1, round(per_class * config.holdout_fraction)), per_class - 1)
    return classes * (per_class - held), classes * held, reported


@lru_cache(maxsize=None)
def forward_gflops(model: str, image_size: int, stem_stride: int, num_classes: int, head: str = "linear",
                   head_num_heads: int = 8) -> float:
    """FLOPs (1e9) of one forward pass of one image, counted on the meta device."""
    with torch.device("meta"):
        net = build_model(model, num_classes, stem_stride=stem_stride, head=head, head_num_heads=head_num_heads)
    return 2.0 * count_macs(net, image_size) / 1e9


def _blocks(model: str) -> int:
    return sum(MODEL_VARIANTS[model].depths)


def compile_shape(config: Any) -> tuple | None:
    """What torch.compile compiles once per notebook (None: not compiled on a GPU)."""
    if config.compile is False:
        return None
    return (config.model, config.image_size, config.stem_stride, config.norm, config.head, config.freeze_backbone)


def load_benchmarks(folder: str | Path | None) -> list[dict[str, Any]]:
    """Rows of every ``*.json`` in ``folder`` (a list of rows, or ``{"rows": [...]}``) measured on one of
    :data:`BENCHMARK_GPUS`; none if absent."""
    rows: list[dict[str, Any]] = []
    if folder is None or not Path(folder).is_dir():
        return rows
    for file in sorted(Path(folder).glob("*.json")):
        data = json.loads(file.read_text())
        rows += data.get("rows", []) if isinstance(data, dict) else data
    return [r for r in rows if isinstance(r, dict) and r.get("images_per_second")
            and any(gpu in str(r.get("device", "")) for gpu in BENCHMARK_GPUS)]


def _measured(config: Any, rows: list[dict[str, Any]], packed: int) -> float | None:
    """Training images/s of a run from the benchmark rows (aggregate/K when K runs share the GPU)."""
    mode = BENCHMARK_MODE if packed <= 1 else f"packed-{packed}"
    match = [r for r in rows if r.get("mode") == mode and r.get("model") == config.model
             and int(r.get("image_size", -1)) == config.image_size and int(r.get("stem_stride", -1)) == config.stem_stride]
    if not match:
        return None
    best = min(match, key=lambda r: abs(math.log(int(r.get("batch_size") or 1) / config.batch_size)))
    return float(best["images_per_second"])


def run_cost(config: Any, *, benchmarks: list[dict[str, Any]] | None = None, packed: int = 1) -> RunCost:
    """Images and estimated GPU seconds of one run (its maximum epochs; overheads included, compile not).

    Every epoch trains once and evaluates the selection split (and the reported one when it
    differs and ``test_every_epoch``); the reported split is evaluated once more at the end.
    """
    n_train, n_select, n_test = split_sizes(config)
    spec = get_dataset_spec(config.dataset)
    classes = config.max_classes or spec.num_classes
    mixing = config.mixup > 0 or config.cutmix > 0
    steps = n_train // config.batch_size if mixing else math.ceil(n_train / config.batch_size)
    steps = min(steps, config.max_steps_per_epoch or steps)
    separate = config.selection == "holdout"
    n_evaluated = n_select + (n_test if separate and config.test_every_epoch else 0)  # evaluated every epoch
    n_final = n_test if separate and not config.test_every_epoch else 0  # the reported split, once
    eval_steps = math.ceil(n_evaluated / config.batch_size)
    seen = min(n_train, steps * config.batch_size)
    images = config.epochs * (seen + n_evaluated) + n_final
    fwd = forward_gflops(config.model, config.image_size, config.stem_stride, classes, config.head,
                         config.head_num_heads) * 1e9
    rate = ASSUMED_TFLOPS * 1e12
    floor = STEP_FLOOR_S + STEP_FLOOR_PER_BLOCK_S * _blocks(config.model)
    n_all = n_train + n_select + (n_test if separate else 0)
    if fast_path_allowed(config) and _features_fit(config, n_all):  # features once, then the head alone
        feature_pass = n_all * fwd / rate + math.ceil(n_all / config.batch_size) * floor / EVAL_SPEEDUP
        seconds = feature_pass + config.epochs * (steps + eval_steps) * HEAD_STEP_S
        return RunCost(images + n_all, RUN_OVERHEAD_S + seconds, "flops")
    measured = _measured(config, benchmarks or [], packed)
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


def assumptions(benchmarks: list[dict[str, Any]]) -> str:
    """The assumptions behind the estimates, named, for the plan's output."""
    basis = (f"measured images/s from {len(benchmarks)} benchmark rows (mode {BENCHMARK_MODE}) where a model "
             "matches, else " if benchmarks else f"no {'/'.join(BENCHMARK_GPUS)} rows in benchmarks/results/*.json: ")
    return (f"estimated {GPU} seconds: {basis}FLOPs at ASSUMED_TFLOPS={ASSUMED_TFLOPS:g} TFLOP/s "
            f"(training {TRAIN_FLOP_FACTOR:g}x forward), per-step floor STEP_FLOOR_S={STEP_FLOOR_S * 1e3:g} ms + "
            f"STEP_FLOOR_PER_BLOCK_S={STEP_FLOOR_PER_BLOCK_S * 1e3:g} ms per block, "
            f"RUN_OVERHEAD_S={RUN_OVERHEAD_S:g} s per run, COMPILE_WARMUP_S={COMPILE_WARMUP_S:g} s per compiled "
            f"model shape and notebook, NOTEBOOK_OVERHEAD_S={NOTEBOOK_OVERHEAD_S:g} s per notebook "
            "(convnext_report/report/estimate.py)")
