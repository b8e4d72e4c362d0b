"""How many runs to train at once (:func:`choose_workers`) and with how many CPU threads each.

The rule lives in :func:`choose_workers`'s docstring; :func:`estimate_run_bytes` is the per-run GPU
memory estimate behind it (traced on the meta device, so it needs no GPU) and says how it was derived.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import torch

from .config import TrainConfig
from .data.registry import DATASETS
from .distributed import resolve_device
from .models import build_model_from_config

__all__ = [
    "MAX_WORKERS", "WORKERS_ENV", "choose_workers", "estimate_run_bytes", "threads_per_worker", "usable_cpus",
    "workers_for_memory",
]

WORKERS_ENV = "CONVNEXT_REPORT_WORKERS"  #: overrides the rule of :func:`choose_workers`
MAX_WORKERS = 8
_FREE_FRACTION = 0.9  # of the free GPU memory that runs may plan on
_CONTEXT_BYTES = 3 << 29  # 1.5 GiB per process: CUDA context (~0.5 GiB), cuBLAS/cuDNN and compile workspaces
_FULL_SPLITS = (100_000, 10_000)  # train/test images when no per_class subset is set (Tiny-ImageNet, the largest)
#: the config keys that decide a model's parameters and activations (the memory estimate's cache key)
_SHAPE_KEYS = ("model", "stem_stride", "image_size", "norm", "head", "head_num_heads", "freeze_backbone")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """CPU threads for each of ``workers`` children: ``max(1, cpus // workers)``."""
    return max(1, (cpus or usable_cpus()) // max(1, workers))


def workers_for_memory(free_bytes: int, run_bytes: int, runs: int, cpus: int, cap: int = MAX_WORKERS) -> int:
    """How many runs of ``run_bytes`` peak fit in ``_FREE_FRACTION`` of ``free_bytes``, at most ``cap``,
    ``cpus`` (each process needs a core to feed the GPU) and ``runs``; at least 1."""
    fit = int(_FREE_FRACTION * free_bytes) // max(1, run_bytes)
    return max(1, min(fit, cap, cpus, runs))


@functools.lru_cache(maxsize=64)
def _model_bytes(shape: tuple, num_classes: int) -> tuple[int, int]:
    """(parameters, bytes saved for backward per image in fp32) of the model that the ``_SHAPE_KEYS``
    values ``shape`` build, traced on the meta device (no memory, no weights loaded)."""
    model_config = TrainConfig(**dict(zip(_SHAPE_KEYS, shape)))
    with torch.device("meta"):
        model = build_model_from_config(model_config, num_classes)
    model.train()

    def saved(batch: int) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.zeros(batch, 3, model_config.image_size, model_config.image_size, device="meta"))
        return total

    # batch 2 minus batch 1: the weights some ops save (e.g. a linear's) cancel out
    return sum(p.numel() for p in model.parameters()), saved(2) - saved(1)


def estimate_run_bytes(config: TrainConfig) -> int:
    """A conservative estimate of one run's peak GPU memory, in bytes (no GPU needed).

    Derived as the sum of:

    * ``_CONTEXT_BYTES`` (1.5 GiB): each process's CUDA context (about 0.5 GiB on Hopper with lazy module
      loading) plus cuBLAS/cuDNN workspaces and ``torch.compile`` autotuning buffers;
    * the uint8 images :class:`~convnext_report.data.DeviceLoader` keeps on the GPU: the subset's
      size when ``train_per_class``/``test_per_class`` are set, else 100k + 10k images (the largest dataset);
    * parameters x (4 B weights + 4 B gradients + optimiser state: 8 B Adam(W)/RAdam, 4 B SGD; + 4 B EMA);
    * activations: the bytes autograd saves per image, traced on the meta device in fp32 (bf16 autocast
      saves less; tensors saved by two ops count twice, so this errs high) x ``batch_size`` x 2, for the
      activation gradients of the backward pass and the caching allocator's rounding.
    """
    classes = config.max_classes or DATASETS[config.dataset].num_classes
    params, per_image = _model_bytes(tuple(getattr(config, k) for k in _SHAPE_KEYS), classes)
    side = DATASETS[config.dataset].native_size
    n_train = config.train_per_class * classes if config.train_per_class else _FULL_SPLITS[0]
    n_test = config.test_per_class * classes if config.test_per_class else _FULL_SPLITS[1]
    per_param = 8 + (4 if config.optimizer == "sgd" else 8) + (4 if config.model_ema else 0)
    return (_CONTEXT_BYTES + (n_train + n_test) * 3 * side * side + params * per_param
            + 2 * per_image * config.batch_size)


def choose_workers(configs: Sequence[TrainConfig], device: str | torch.device = "auto", *,
                   workers: int | None = None) -> int:
    """How many of ``configs`` to train at once on ``device``.

    1. ``workers`` if given, else ``$CONVNEXT_REPORT_WORKERS`` if set: that many, at most ``len(configs)``.
    2. CPU (any device but CUDA): 1. Processes on the same cores share them; measure before raising it.
    3. CUDA: as many as fit in 90% of the free memory (``torch.cuda.mem_get_info``) at
       :func:`estimate_run_bytes` of the largest run each, at most 8, the usable CPUs and ``len(configs)``;
       at least 1.
    """
    n = len(configs)
    if n == 0:
        return 1
    if workers is None and os.environ.get(WORKERS_ENV, "").strip():
        raw = os.environ[WORKERS_ENV].strip()
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{WORKERS_ENV}={raw!r} is not a whole number >= 1: unset it, or set e.g. "
                             f"{WORKERS_ENV}=4")
        workers = int(raw)
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 (or None to choose), got {workers}")
        return min(workers, n)
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return workers_for_memory(free, max(estimate_run_bytes(c) for c in configs), n, usable_cpus())
