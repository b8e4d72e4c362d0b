"""Batch transforms that run where the batch is (GPU or CPU), on uint8 (B, 3, H, W) tensors.

Train: per-sample random crop with zero padding, per-sample horizontal flip, per-sample
RandAugment, then a resize to the model input (bilinear, antialiased) and normalisation to
float32. Eval: resize and normalisation only.

RandAugment follows torchvision's ``transforms.v2.RandAugment`` exactly (same op set, magnitude
bins, random sign for signed ops, ``num_ops`` ops drawn independently per image), but instead of
one image at a time it groups the batch by (op, sign) and applies torchvision's op to each group:
a few dozen kernel launches per batch. All random draws come from a CPU ``torch.Generator`` so a
seed gives the same augmentation on every device.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .registry import DatasetSpec

MeanStd = tuple[Sequence[float], Sequence[float]]


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


def _rand_mask(n: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def random_crop(
    images: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch back to its size."""
    if padding <= 0:
        return images
    b, _, h, w = images.shape
    padded = nnf.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)).to(images.device, non_blocking=True)
    cols = (dx[:, None] + torch.arange(w)).to(images.device, non_blocking=True)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each sample left-right with probability 0.5."""
    flip = _rand_mask(images.shape[0], 0.5, generator).to(images.device, non_blocking=True)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class RandAugmentBatch(nn.Module):
    """torchvision RandAugment with ops drawn per sample, applied per (op, sign) group.

    ``ops`` restricts the op set (default: all of torchvision's), e.g. to show one op in a figure.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        ops: Sequence[str] | None = None,
        interpolation: InterpolationMode = InterpolationMode.NEAREST,
        fill: float | Sequence[float] | None = None,
    ):
        super().__init__()
        self._tv = v2.RandAugment(num_ops, magnitude, num_magnitude_bins, interpolation, fill)
        space = self._tv._AUGMENTATION_SPACE
        self.ops = list(space) if ops is None else list(ops)
        unknown = [o for o in self.ops if o not in space]
        if unknown or not self.ops:
            raise ValueError(f"unknown RandAugment op(s) {unknown}; choose from {list(space)}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be in 0..{num_magnitude_bins - 1}, got {magnitude}")
        self.num_ops, self.magnitude, self.num_magnitude_bins = num_ops, magnitude, num_magnitude_bins

    def magnitudes(self, height: int, width: int) -> list[tuple[float, bool]]:
        """(magnitude, signed) per op for this image size, as torchvision computes them."""
        out = []
        for name in self.ops:
            fn, signed = self._tv._AUGMENTATION_SPACE[name]
            values = fn(self.num_magnitude_bins, height, width)
            out.append((0.0, False) if values is None else (float(values[self.magnitude]), signed))
        return out

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        table = self.magnitudes(h, w)
        signed = torch.tensor([s for _, s in table])
        out = images.clone()
        for _ in range(self.num_ops):
            op = torch.randint(len(self.ops), (b,), generator=generator)
            negative = (torch.rand(b, generator=generator) <= 0.5) & signed[op]  # torchvision's rule
            key = op * 2 + negative.long()
            for k in torch.unique(key).tolist():
                name = self.ops[k // 2]
                if name == "Identity":
                    continue
                mag = table[k // 2][0] * (-1.0 if k % 2 else 1.0)
                rows = torch.nonzero(key == k).flatten()
                if len(rows) == b:
                    out = self._apply(out, name, mag)
                    continue
                rows = rows.to(out.device, non_blocking=True)
                out.index_copy_(0, rows, self._apply(out.index_select(0, rows), name, mag))
        return out

    def _apply(self, images: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
        tv = self._tv
        return tv._apply_image_or_video_transform(
            images, name, magnitude, interpolation=tv.interpolation, fill=tv._fill
        )

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, ops={len(self.ops)}"


class BatchTransform(nn.Module):
    """uint8 (B, 3, H, W) on any device -> float32 normalised (B, 3, S, S) on the same device."""

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
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)

    @property
    def is_train(self) -> bool:
        return self.crop_padding > 0 or self.hflip or self.randaugment is not None

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        x = images
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, generator)
        if self.hflip:
            x = random_hflip(x, generator)
        if self.randaugment is not None:
            x = self.randaugment(x, generator)
        x = x.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = TF.resize(x, [self.image_size, self.image_size], InterpolationMode.BILINEAR, antialias=True)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean) / std

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, crop_padding={self.crop_padding}, hflip={self.hflip}"


def _mean_std(spec_or_mean_std: DatasetSpec | MeanStd) -> MeanStd:
    if isinstance(spec_or_mean_std, DatasetSpec):
        return spec_or_mean_std.mean, spec_or_mean_std.std
    mean, std = spec_or_mean_std
    return mean, std


def make_train_transform(
    spec_or_mean_std: DatasetSpec | MeanStd,
    image_size: int,
    *,
    crop_padding: int = 4,
    hflip: bool = True,
    randaugment: str | None = None,
) -> BatchTransform:
    """Crop (zero padding) + flip + optional RandAugment (e.g. ``"n2m9"``) + resize + normalise."""
    mean, std = _mean_std(spec_or_mean_std)
    ra = RandAugmentBatch(*parse_randaugment(randaugment)) if randaugment else None
    return BatchTransform(mean, std, image_size, crop_padding=crop_padding, hflip=hflip, randaugment=ra)


def make_eval_transform(
    mean: DatasetSpec | Sequence[float],
    std: Sequence[float] | int | None = None,
    image_size: int | None = None,
) -> BatchTransform:
    """Resize + normalise. ``make_eval_transform(mean, std, size)`` or ``make_eval_transform(spec, size)``."""
    if isinstance(mean, DatasetSpec):
        if isinstance(std, int) and image_size is None:
            std, image_size = None, std
        mean, std = mean.mean, mean.std
    if std is None or image_size is None:
        raise ValueError("make_eval_transform needs mean, std and image_size (or a DatasetSpec and image_size)")
    return BatchTransform(mean, std, int(image_size))
