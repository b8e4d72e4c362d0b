"""How many runs to train at once (:func:`choose_workers`) and with how many CPU threads each.

The rule lives in :func:`choose_workers`'s docstring; :func:`estimate_run_bytes` is the per-run GPU
memory estimate behind it (traced on the meta device, so it needs no GPU) and says how it was derived.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from .complexity import training_cost
from .config import TrainConfig
from .data.registry import DATASETS
from .distributed import resolve_device
from .parts import loaded_images

__all__ = ["MAX_WORKERS", "choose_workers", "estimate_run_bytes", "threads_per_worker", "usable_cpus",
           "workers_for_memory"]

MAX_WORKERS = 8
_FREE_FRACTION = 0.9  # of the free GPU memory that runs may plan on
_CONTEXT_BYTES = 3 << 29  # 1.5 GiB per process: CUDA context (~0.5 GiB), cuBLAS/cuDNN and compile workspaces


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


def estimate_run_bytes(config: TrainConfig) -> int:
    """A conservative estimate of one run's peak GPU memory, in bytes (no GPU needed).

    Derived as the sum of:

    * ``_CONTEXT_BYTES`` (1.5 GiB): each process's CUDA context (about 0.5 GiB on Hopper with lazy module
      loading) plus cuBLAS/cuDNN workspaces and ``torch.compile`` autotuning buffers;
    * the uint8 images :class:`~convnext_report.data.DeviceLoader` keeps on the GPU: the train and test
      images of every split the run loads (:func:`~convnext_report.parts.loaded_images`);
    * parameters x (4 B weights + 4 B gradients + optimiser state: 8 B Adam(W)/RAdam, 4 B SGD; + 4 B EMA);
    * activations: :func:`~convnext_report.complexity.training_cost`'s saved bytes per image (fp32; bf16
      autocast saves less) x ``batch_size`` x 2, for the activation gradients of the backward pass and the
      caching allocator's rounding.
    """
    spec = DATASETS[config.dataset]
    cost = training_cost(config, config.max_classes or spec.num_classes)
    images = loaded_images(config)
    per_param = 8 + (4 if config.optimizer == "sgd" else 8) + (4 if config.model_ema else 0)
    return (_CONTEXT_BYTES + images * 3 * spec.native_size**2 + cost.params * per_param
            + 2 * cost.saved_bytes * config.batch_size)


def choose_workers(configs: Sequence[TrainConfig], device: str | torch.device = "auto", *,
                   workers: int | None = None) -> int:
    """How many of ``configs`` to train at once on ``device``.

    1. ``workers`` if given: that many, at most ``len(configs)``.
    2. CPU (any device but CUDA): 1. Processes on the same cores share them; measure before raising it.
    3. CUDA: as many as fit in 90% of the free memory (``torch.cuda.mem_get_info``) at
       :func:`estimate_run_bytes` of the largest run each, at most 8, the usable CPUs and ``len(configs)``;
       at least 1.
    """
    n = len(configs)
    if n == 0:
        return 1
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 (or None to choose), got {workers}")
        return min(workers, n)
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return workers_for_memory(free, max(estimate_run_bytes(c) for c in configs), n, usable_cpus())
