"""One epoch's sample order for one DDP rank, shared by every loader of the package.

The permutation of epoch ``e`` under seed ``s`` comes from ``numpy.random.SeedSequence([s, e])``,
so every (seed, epoch) pair gets an independent stream (``seed + epoch`` would make seed s at
epoch e replay seed s+1 at epoch e-1). Sharding follows ``torch.utils.data.DistributedSampler``:
the order is padded by wrapping around (or cut, with ``drop_last``) to a multiple of
``world_size`` and rank ``r`` takes every ``world_size``-th index from ``r``.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

__all__ = ["EpochSampler"]


class EpochSampler:
    """Indices of ``num_items`` items for one rank and one epoch (call :meth:`set_epoch` per epoch)."""

    def __init__(self, num_items: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False) -> None:
        if num_items < 0 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need num_items >= 0 and 0 <= rank < world_size, got {num_items}, {rank}, {world_size}")
        self.num_items, self.shuffle, self.seed = num_items, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        #: indices per rank: every rank gets the same number, like DistributedSampler
        self.num_samples = num_items // world_size if drop_last else math.ceil(num_items / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> torch.Tensor:
        """This epoch's order of all items (before sharding): a permutation, or ``arange`` without shuffle."""
        if not self.shuffle:
            return torch.arange(self.num_items)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        return torch.from_numpy(rng.permutation(self.num_items))

    def indices(self) -> torch.Tensor:
        """This rank's indices (int64, CPU) for the current epoch."""
        order = self.order()
        total = self.num_samples * self.world_size
        if total > len(order) > 0:  # pad by wrapping around, as DistributedSampler does
            order = order.repeat(math.ceil(total / len(order)))
        return order[:total][self.rank :: self.world_size]

    def num_batches(self, batch_size: int, *, drop_last: bool) -> int:
        """Batches per epoch of this rank: the last partial batch is dropped with ``drop_last``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return self.num_samples // batch_size if drop_last else math.ceil(self.num_samples / batch_size)

    def batches(self, batch_size: int, *, drop_last: bool, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
        """This epoch's index batches, moved to ``device`` once per epoch."""
        order = self.indices().to(device)
        for step in range(self.num_batches(batch_size, drop_last=drop_last)):
            yield order[step * batch_size : (step + 1) * batch_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
