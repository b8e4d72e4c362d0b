"""Fast path for a frozen backbone: compute its features once, then train the head alone.

Only valid when nothing random happens before the head (no augmentation, no Mixup), so the
backbone output of an image is the same every epoch. Heads that start with global average
pooling (timm's ConvNeXt head) get pooled ``(N, C, 1, 1)`` features, which is exact and small;
other heads (the attention head) get the full feature map.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from timm.layers import ClassifierHead, NormMlpClassifierHead
from torch import nn

from .data import DeviceLoader, ImageTensors
from .engine import autocast

__all__ = ["FAST_PATH_MAX_BYTES", "HeadOnly", "TensorLoader", "cached_feature_loaders", "extract_features",
           "pools_first"]

FAST_PATH_MAX_BYTES = 4 * 2**30  #: largest feature cache the frozen-backbone fast path may hold


class HeadOnly(nn.Module):
    """``model.forward_head`` as a module: the classifier of ``model`` applied to cached features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


def pools_first(model: nn.Module) -> bool:
    """Whether ``model.head`` starts with global average pooling (pooled features are exact)."""
    head = getattr(model, "head", None)
    pool = getattr(head, "global_pool", None)
    return isinstance(head, (NormMlpClassifierHead, ClassifierHead)) and getattr(pool, "pool_type", "") == "avg"


@torch.no_grad()
def extract_features(
    model: nn.Module, loader: Iterable, *, device: torch.device, amp: bool, channels_last: bool, pool: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, labels)`` of ``model.forward_features`` over ``loader`` (in order), on ``device``."""
    model.eval()
    feats, labels = [], []
    for images, y in loader:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            f = model.forward_features(images)
        if pool:
            f = f.float().mean(dim=(2, 3), keepdim=True)
        feats.append(f.to(torch.bfloat16 if f.dtype == torch.bfloat16 else torch.float32).contiguous())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


class TensorLoader(DeviceLoader):
    """A :class:`~convnext_report.data.DeviceLoader` over cached ``(features, labels)``, batches as float32 on
    the features' device; ``options``: its ``shuffle``, ``drop_last``, ``seed``, ``rank``, ``world_size``,
    ``max_steps``."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, **options: Any) -> None:
        data = SimpleNamespace(images=features, labels=labels, dataset="features", split="cached")
        super().__init__(data, batch_size, transform=torch.Tensor.float, device=features.device, **options)


def cached_feature_loaders(
    model: nn.Module,
    train_data: ImageTensors,
    eval_loaders: Sequence[DeviceLoader],
    *,
    transform: nn.Module,
    batch_size: int,
    device: torch.device,
    amp: bool,
    channels_last: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    max_steps: int | None = None,
) -> tuple[TensorLoader, list[TensorLoader]] | None:
    """A shuffling train loader and one loader per ``eval_loaders``, over backbone features computed
    once; None when they would not fit in :data:`FAST_PATH_MAX_BYTES` (then the caller trains
    through the frozen backbone)."""
    pool = pools_first(model)
    with torch.no_grad():
        shape = model.eval().forward_features(next(iter(eval_loaders[0]))[0][:1]).shape
    per_image = 4 * (shape[1] if pool else int(np.prod(shape[1:])))
    images = len(train_data.labels) + sum(len(loader.data.labels) for loader in eval_loaders)
    if per_image * images > FAST_PATH_MAX_BYTES:
        return None
    plain = DeviceLoader(train_data, batch_size, transform=transform, shuffle=False, drop_last=False, device=device)
    kw = dict(device=device, amp=amp, channels_last=channels_last, pool=pool)
    train = TensorLoader(*extract_features(model, plain, **kw), batch_size, shuffle=True, drop_last=False, seed=seed,
                         rank=rank, world_size=world_size, max_steps=max_steps)
    evals = [TensorLoader(*extract_features(model, loader, **kw), batch_size, shuffle=False, drop_last=False)
             for loader in eval_loaders]
    return train, evals
