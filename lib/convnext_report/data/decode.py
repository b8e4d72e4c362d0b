"""Decode encoded images once into uint8 tensors and keep them in an on-disk cache.

* Images are decoded with PIL from their bytes, converted to RGB (some Tiny-ImageNet
  images are grayscale) and resized to the dataset's native size if they differ.
  Large splits are decoded by a process pool (about 5 s for 100k 32 px JPEGs on 2 cores).
* Cache entries are keyed by the sha256 of the source parquet files; the checksums
  themselves are cached by (path, size, mtime) so a warm start takes seconds.
* Every cache file is written to a temporary name and renamed, so a killed run never
  leaves a half-written entry.
* Decode workers die with the process that started them (Linux ``PR_SET_PDEATHSIG``), and an
  interrupt (Ctrl-C, SIGTERM) of that process cancels the pending work: a killed run never
  leaves workers behind.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

import numpy as np
import torch

from ..interrupts import die_with_parent, sigterm_raises

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
    chunks = [(start, blobs[start : start + _CHUNK], size) for start in range(0, n, _CHUNK)]
    parts = None
    # fork only: spawn/forkserver would re-run the caller's __main__ (scripts, notebooks, stdin)
    if workers > 1 and n >= _POOL_MIN_IMAGES and "fork" in multiprocessing.get_all_start_methods():
        parts = _decode_in_pool(chunks, workers)
    if parts is None:
        parts = [_decode_chunk(c) for c in chunks]
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for (start, _, _), part in zip(chunks, parts):
        if isinstance(part, tuple):  # (row, reason) of a failure
            raise CorruptImageError(*part)
        out[start : start + len(part)] = part
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _decode_in_pool(chunks: list, workers: int) -> list | None:
    """Decode ``chunks`` in a fork pool; ``None`` when no pool can run (then decode here).

    Workers die with this process; an exception here (Ctrl-C, or SIGTERM while this runs in the
    main thread) cancels the pending chunks and releases the workers without waiting for them.
    """
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_init_worker, initargs=(os.getpid(),))
    except OSError:  # no pipes / processes left
        return None
    try:
        with sigterm_raises():
            parts = list(pool.map(_decode_chunk, chunks))
    except (BrokenProcessPool, OSError):  # no fork allowed / worker killed: decode here
        pool.shutdown(wait=False, cancel_futures=True)
        return None
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return parts


def _init_worker(parent: int) -> None:
    """Pool initializer: default SIGTERM, no SIGINT (the parent handles Ctrl-C), die with ``parent``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def _decode_chunk(args: tuple[int, Sequence[bytes | None], int]) -> np.ndarray | tuple[int, str]:
    from PIL import Image

    start, blobs, size = args
    out = np.empty((len(blobs), size, size, 3), dtype=np.uint8)
    for i, blob in enumerate(blobs):
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
            return start + i, f"{type(err).__name__}: {err}"
    return out
