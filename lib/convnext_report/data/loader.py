"""Batches straight from decoded uint8 tensors, indexed and augmented on the device.

On CUDA the whole split is copied to the GPU once when it fits (a 100k x 3 x 32 x 32 split is
300 MB), so each batch is one ``index_select`` plus the batch transform and the input pipeline
never starves the GPU. Otherwise batches are sliced on the CPU, pinned and copied.
Order and DDP shards come from :class:`.sampler.EpochSampler`; augmentation draws from a
generator on the device, seeded per (seed, epoch, rank).
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .augment import BatchTransform
from .sampler import EpochSampler

__all__ = ["DeviceLoader", "augmentation_generator"]

_FREE_FRACTION = 0.5  # keep the split on the GPU if it takes at most this share of free memory


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return device.type not in ("cpu", "meta")  # mps/xpu: try; cpu: already there
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= _FREE_FRACTION * free


def augmentation_generator(device: torch.device | str, seed: int, epoch: int, rank: int) -> torch.Generator:
    """A generator on ``device`` for one (seed, epoch, rank), independent of the shuffling stream."""
    state = np.random.SeedSequence([seed, epoch, rank, 0x5EED]).generate_state(2)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))


class DeviceLoader:
    """Iterate ``(images, labels)`` batches of an ``ImageTensors`` on ``device``.

    ``transform`` maps a uint8 batch on the device to the model input; an ``nn.Module`` is moved to
    ``device`` once here, and a :class:`BatchTransform` gets a seeded generator on ``device`` so
    augmentation is reproducible. ``None`` yields the uint8 batch.
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
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.transform = transform.to(self.device) if isinstance(transform, nn.Module) else transform
        self.sampler = EpochSampler(len(data.labels), shuffle=shuffle, seed=seed, rank=rank,
                                    world_size=world_size, drop_last=drop_last)
        self.max_steps = max_steps
        images, labels = data.images, data.labels
        self.on_device = self.device.type != "cpu" and (images.device == self.device
                                                        or _fits_on(self.device, images.numel()))
        if self.on_device:
            images, labels = images.to(self.device), labels.to(self.device)
        self._images, self._labels = images, labels

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (and re-draw augmentation) for ``epoch``; call before iterating."""
        self.sampler.set_epoch(epoch)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch (before batching)."""
        return self.sampler.indices()

    def __len__(self) -> int:
        steps = self.sampler.num_batches(self.batch_size, drop_last=self.drop_last)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        s = self.sampler
        g = augmentation_generator(self.device, s.seed, s.epoch, s.rank)
        index_device = self.device if self.on_device else "cpu"
        for idx in islice(s.batches(self.batch_size, drop_last=self.drop_last, device=index_device), len(self)):
            images, labels = self._images.index_select(0, idx), self._labels.index_select(0, idx)
            if not self.on_device and self.device.type != "cpu":
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
            f"on_device={self.on_device}, rank={self.sampler.rank}/{self.sampler.world_size})"
        )
