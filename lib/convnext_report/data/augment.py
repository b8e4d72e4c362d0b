"""Batch transforms that run where the batch is (GPU or CPU), on uint8 (B, 3, H, W) tensors.

Train: per-sample random crop with zero padding, per-sample horizontal flip, per-sample
RandAugment (:mod:`.randaugment`), then a resize to the model input (bilinear, antialiased) and
normalisation to float32. Eval: resize and normalisation only.

Everything is a fixed handful of whole-batch kernels: random numbers come from a generator on
the batch's device, constants are module buffers (move the transform once with ``.to(device)``),
and nothing reads tensor values back to the host, so the host never waits for the device.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

from .randaugment import RandAugmentBatch
from .registry import DatasetSpec

MeanStd = tuple[Sequence[float], Sequence[float]]

__all__ = [
    "BatchTransform",
    "RandAugmentBatch",
    "make_eval_transform",
    "make_train_transform",
    "parse_randaugment",
    "random_crop",
    "random_hflip",
]


def parse_randaugment(spec: str) -> tuple[int, int]:
    """``"n2m9"`` -> ``(num_ops, magnitude)`` = ``(2, 9)``; ``"m9n2"``/``"rand-m9-n2"`` also work."""
    text = re.sub(r"^rand[-_]?", "", str(spec).strip().lower())
    parts = dict(re.findall(r"([nm])(\d+)", text))
    leftover = re.sub(r"[nm]\d+|[-_]", "", text)
    if leftover or "m" not in parts:
        raise ValueError(
            f"cannot parse RandAugment spec {spec!r}: use 'n<num_ops>m<magnitude>', e.g. 'n2m9'"
        )
    num_ops, magnitude = int(parts.get("n", 2)), int(parts["m"])
    if not 0 <= magnitude <= 30:
        raise ValueError(f"RandAugment magnitude must be in 0..30 (31 bins), got {magnitude} in {spec!r}")
    return num_ops, magnitude


def random_crop(
    images: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch back to its size (one gather)."""
    if padding <= 0:
        return images
    b, _, h, w = images.shape
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=images.device)
    windows = nnf.pad(images, (padding,) * 4).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    return windows[torch.arange(b, device=images.device), :, dy, dx]


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each sample left-right with probability 0.5."""
    flip = torch.randint(2, (images.shape[0], 1, 1, 1), dtype=torch.bool, generator=generator, device=images.device)
    return torch.where(flip, images.flip(-1), images)


class BatchTransform(nn.Module):
    """uint8 (B, 3, H, W) -> float32 normalised (B, 3, S, S), on the device the module was moved to.

    ``generator`` (on the batch's device) drives every random draw, so a seed fixes the
    augmentation on a given device type (CPU and CUDA generators give different streams).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        image_size: int,
        *,
        crop_padding: int = 0,
        hflip: bool = False,
        randaugment: RandAugmentBatch | None = None,
    ):
        super().__init__()
        self.image_size = int(image_size)
        self.crop_padding = int(crop_padding)
        self.hflip = bool(hflip)
        self.randaugment = randaugment
        std_ = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        mean_ = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one fused x * scale + shift
        self.register_buffer("scale", 1.0 / (255.0 * std_), persistent=False)
        self.register_buffer("shift", -mean_ / std_, persistent=False)

    @property
    def is_train(self) -> bool:
        return self.crop_padding > 0 or self.hflip or self.randaugment is not None

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if images.device != self.scale.device:
            raise ValueError(f"images are on {images.device} but the transform on {self.scale.device}: "
                             "move it once with transform.to(device)")
        x = images
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, generator)
        if self.hflip:
            x = random_hflip(x, generator)
        x = x.float()
        if self.randaugment is not None:
            x = self.randaugment(x, generator)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = nnf.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                align_corners=False, antialias=True)
        return torch.addcmul(self.shift, x, self.scale)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, crop_padding={self.crop_padding}, hflip={self.hflip}"


def _mean_std(stats: DatasetSpec | MeanStd) -> MeanStd:
    return (stats.mean, stats.std) if isinstance(stats, DatasetSpec) else (stats[0], stats[1])


def make_train_transform(stats: DatasetSpec | MeanStd, image_size: int, *, crop_padding: int = 4,
                         hflip: bool = True, randaugment: str | None = None) -> BatchTransform:
    """Crop (zero padding) + flip + optional RandAugment (e.g. ``"n2m9"``) + resize + normalise with ``stats``
    (a dataset's, or ``(mean, std)``)."""
    ra = RandAugmentBatch(*parse_randaugment(randaugment)) if randaugment else None
    return BatchTransform(*_mean_std(stats), image_size, crop_padding=crop_padding, hflip=hflip, randaugment=ra)


def make_eval_transform(stats: DatasetSpec | MeanStd, image_size: int) -> BatchTransform:
    """Resize + normalise with ``stats`` (a dataset's, or ``(mean, std)``)."""
    return BatchTransform(*_mean_std(stats), image_size)
