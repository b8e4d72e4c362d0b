"""Decode encoded images once into uint8 tensors and keep them in an on-disk cache.

* Images are decoded with PIL from their bytes, converted to RGB (some Tiny-ImageNet
  images are grayscale) and resized to the dataset's native size if they differ.
  Large splits are decoded by a process pool (about 5 s for 100k 32 px JPEGs on 2 cores).
* Cache entries are keyed by the sha256 of the source parquet files; the checksums
  themselves are cached by (path, size, mtime) so a warm start takes seconds.
* Every cache file is written to a temporary name and renamed, so a killed run never
  leaves a half-written entry.
* Decode workers are forked: they read the encoded bytes they inherit and write pixels into a
  shared mapping, so only row ranges cross pipes. They die with the process that started them
  (Linux ``PR_SET_PDEATHSIG``), and an interrupt (Ctrl-C, SIGTERM) of that process kills them
  before it is raised: a killed run never leaves workers behind or hangs on its way out.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

import numpy as np
import torch

from ..interrupts import die_with_parent, signals_deferred

__all__ = ["CorruptImageError", "decode_images"]


_POOL_MIN_IMAGES = 20_000  # below this a pool costs more than it saves
_CHUNK = 4096


class CorruptImageError(ValueError):
    """An encoded image could not be decoded; ``row`` is its index in the decoded sequence."""

    def __init__(self, row: int, reason: str):
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason


def decode_images(
    blobs: Sequence[bytes | None], size: int, *, workers: int | None = None
) -> torch.Tensor:
    """Decode encoded images to a uint8 tensor (N, 3, size, size).

    Raises :class:`CorruptImageError` (a ``ValueError``) naming the first row that fails.
    ``workers``: processes for large inputs (default: all CPUs; 1 = in this process).
    """
    n = len(blobs)
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(8, cpus)
    ranges = [(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    # an anonymous shared mapping (freed with its last reference): forked workers write rows into it
    shared = mmap.mmap(-1, max(1, n * size * size * 3))
    out = np.frombuffer(shared, dtype=np.uint8, count=n * size * size * 3).reshape(n, size, size, 3)
    failures = None
    # fork only: spawn/forkserver would re-run the caller's __main__ (scripts, notebooks, stdin)
    if workers > 1 and n >= _POOL_MIN_IMAGES and "fork" in multiprocessing.get_all_start_methods():
        failures = _decode_in_pool(blobs, out, ranges, workers)
    if failures is None:
        failures = [_decode_rows(blobs, out, start, stop) for start, stop in ranges]
    failure = next((f for f in failures if f is not None), None)
    if failure is not None:
        raise CorruptImageError(*failure)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # a copy in ordinary memory


def _decode_in_pool(blobs: Sequence[bytes | None], out: np.ndarray, ranges: list[tuple[int, int]],
                    workers: int) -> list | None:
    """Decode ``ranges`` of rows in a fork pool; ``None`` when no pool can run (then decode here).

    The workers inherit ``blobs`` and ``out`` through fork, so only row ranges and failures cross
    the pipes: every message is a few bytes, and a killed worker never leaves half a message that
    blocks the pool. Workers die with this process. Ctrl-C or SIGTERM kills them at once and is
    raised when the pool is down (not inside its locks, where it could hang the interpreter's exit).
    """
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_init_worker, initargs=(os.getpid(), blobs, out))
    except OSError:  # no pipes / processes left
        return None
    failures: list | None = None
    with signals_deferred(lambda: _kill_workers(pool)) as stop:
        try:
            futures = []
            for start, stop_row in ranges:  # submit + result, not ``map``, to check ``stop`` between
                if stop:
                    break
                futures.append(pool.submit(_decode_worker_rows, start, stop_row))
            failures = []
            for future in futures:
                if stop:
                    break
                failures.append(future.result())
        except (BrokenProcessPool, OSError):  # no fork allowed / worker killed: decode here
            failures = None
        finally:
            if stop or failures is None or len(failures) < len(ranges):
                _kill_workers(pool)
                pool.shutdown(wait=False)  # the pool sees its workers die and fails what is pending
                failures = None
            else:
                pool.shutdown()
    return failures


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL the pool's workers (their work is pure decoding: nothing to finish or save).

    Safe in a signal handler: no locks, only ``os.kill``. Reads the pool's private ``_processes``
    (present in Python 3.9-3.14): the public ``kill_workers`` exists from 3.14 only and takes locks.
    """
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError, TypeError):
            os.kill(process.pid, signal.SIGKILL)


_WORKER_ROWS: tuple[Sequence[bytes | None], np.ndarray] | None = None  # set in each pool worker


def _init_worker(parent: int, blobs: Sequence[bytes | None], out: np.ndarray) -> None:
    """Pool initializer: default SIGTERM, no SIGINT (the parent handles Ctrl-C), die with ``parent``;
    keep the inherited ``blobs`` and shared ``out`` for :func:`_decode_worker_rows`."""
    global _WORKER_ROWS
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    _WORKER_ROWS = (blobs, out)


def _decode_worker_rows(start: int, stop: int) -> tuple[int, str] | None:
    assert _WORKER_ROWS is not None, "called outside a decode pool worker"
    return _decode_rows(*_WORKER_ROWS, start, stop)


def _decode_rows(blobs: Sequence[bytes | None], out: np.ndarray, start: int, stop: int) -> tuple[int, str] | None:
    """Decode rows ``start:stop`` of ``blobs`` into ``out`` (N, H, W, 3); the first failure as (row, reason)."""
    from PIL import Image

    size = out.shape[1]
    for i in range(start, stop):
        blob = blobs[i]
        try:
            if not blob:
                raise ValueError("no image bytes")
            with Image.open(io.BytesIO(blob)) as im:
                im.load()
                if im.mode != "RGB":
                    im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BICUBIC)
                out[i] = np.asarray(im)
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
            return i, f"{type(err).__name__}: {err}"
    return None
