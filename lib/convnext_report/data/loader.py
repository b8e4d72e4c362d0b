"""Batches straight from decoded uint8 tensors, indexed and augmented on the device.

On CUDA the whole split is copied to the GPU once when it fits (a 100k x 3 x 32 x 32 split is
300 MB), so each batch is one ``index_select`` plus the batch transform and the input pipeline
never starves the GPU. Otherwise batches are sliced on the CPU, pinned and copied.
Shuffling and DDP sharding follow ``torch.utils.data.DistributedSampler``: one permutation per
epoch from ``seed + epoch``, padded (or cut with ``drop_last``) to a multiple of ``world_size``,
rank ``r`` taking every ``world_size``-th index from ``r``.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch

from .augment import BatchTransform

_FREE_FRACTION = 0.5  # keep the split on the GPU if it takes at most this share of free memory


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return device.type not in ("cpu", "meta")  # mps/xpu: try; cpu: already there
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= _FREE_FRACTION * free


class DeviceLoader:
    """Iterate ``(images, labels)`` batches of an ``ImageTensors`` on ``device``.

    ``transform`` maps a uint8 batch on the device to the model input (a :class:`BatchTransform`
    gets a seeded generator so augmentation is reproducible); ``None`` yields the uint8 batch.
    """

    def __init__(
        self,
        data,
        batch_size: int,
        *,
        transform: Callable[..., torch.Tensor] | None,
        shuffle: bool,
        drop_last: bool,
        device: torch.device | str,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_steps: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}")
        self.data = data
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.max_steps = max_steps
        self.epoch = 0
        n = len(data.labels)
        if drop_last and n % world_size:
            self.num_samples = n // world_size  # per rank, like DistributedSampler(drop_last=True)
        else:
            self.num_samples = math.ceil(n / world_size)
        images, labels = data.images, data.labels
        self.on_device = self.device.type != "cpu" and _fits_on(self.device, images.numel())
        if self.on_device:
            images, labels = images.to(self.device), labels.to(self.device)
        self._images, self._labels = images, labels

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (and re-draw augmentation) for ``epoch``; call before iterating."""
        self.epoch = int(epoch)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch (before batching)."""
        n = len(self.data.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:  # pad by wrapping around, as DistributedSampler does
            order = torch.cat([order, order[: total - n]])
        return order[:total][self.rank :: self.world_size]

    def __len__(self) -> int:
        steps = self.num_samples // self.batch_size if self.drop_last else math.ceil(self.num_samples / self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def _generator(self) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank, 0x5EED]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices()
        g = self._generator()
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            if self.on_device:
                idx = idx.to(self.device, non_blocking=True)
                images, labels = self._images.index_select(0, idx), self._labels.index_select(0, idx)
            else:
                images, labels = self._images.index_select(0, idx), self._labels.index_select(0, idx)
                if self.device.type != "cpu":
                    images = images.pin_memory().to(self.device, non_blocking=True)
                    labels = labels.pin_memory().to(self.device, non_blocking=True)
            if isinstance(self.transform, BatchTransform):
                images = self.transform(images, generator=g)
            elif self.transform is not None:
                images = self.transform(images)
            yield images, labels

    def __repr__(self) -> str:
        return (
            f"DeviceLoader({self.data.dataset}/{self.data.split}, n={len(self.data.labels)}, "
            f"batch_size={self.batch_size}, steps={len(self)}, device={self.device}, "
            f"on_device={self.on_device}, rank={self.rank}/{self.world_size})"
        )
