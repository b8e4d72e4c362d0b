"""Decode encoded images into uint8 tensors, in this process (no worker pool: as fast on 2 cores, half the
CPU time). JPEGs go through torchvision's ``decode_jpeg`` in batches, straight to RGB; what it rejects
(another format, a damaged image) through PIL, which names the first corrupt row; an image of another size
is resized (PIL, bicubic) to the dataset's native size. Ctrl-C and SIGTERM stop it like any Python code.
"""

from __future__ import annotations

import io
import warnings
from typing import Sequence

import numpy as np
import torch

__all__ = ["CorruptImageError", "decode_images"]

_BATCH = 1024


class CorruptImageError(ValueError):
    """An encoded image could not be decoded; ``row`` is its index in the decoded sequence."""

    def __init__(self, row: int, reason: str):
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason


def decode_images(blobs: Sequence[bytes | None], size: int) -> torch.Tensor:
    """Decode encoded images to a uint8 tensor (N, 3, size, size).

    Raises :class:`CorruptImageError` (a ``ValueError``) naming the first row that fails.
    """
    out = torch.empty((len(blobs), 3, size, size), dtype=torch.uint8)
    for start in range(0, len(blobs), _BATCH):
        batch = blobs[start : start + _BATCH]
        images = [_decode_pil(batch[i], start + i) if image is None else image
                  for i, image in enumerate(_decode_jpegs(batch))]
        images = [image if image.shape[1:] == (size, size) else _resize(image, size) for image in images]
        torch.stack(images, out=out[start : start + len(batch)])
    return out


def _decode_jpegs(blobs: Sequence[bytes | None]) -> list[torch.Tensor | None]:
    """RGB tensors (3, H, W) of ``blobs``; ``None`` for each one libjpeg cannot decode (not a JPEG, damaged)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else None for blob in blobs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
        if all(d is not None for d in data):
            try:
                return decode_jpeg(data, mode=ImageReadMode.RGB)
            except RuntimeError:  # one of them is not a JPEG or is damaged: one by one
                pass
        images: list[torch.Tensor | None] = []
        for d in data:
            try:
                images.append(None if d is None else decode_jpeg(d, mode=ImageReadMode.RGB))
            except RuntimeError:
                images.append(None)
    return images


def _decode_pil(blob: bytes | None, row: int) -> torch.Tensor:
    """One image of any format PIL reads, as RGB (3, H, W)."""
    from PIL import Image

    try:
        if not blob:
            raise ValueError("no image bytes")
        with Image.open(io.BytesIO(blob)) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise CorruptImageError(row, f"{type(err).__name__}: {err}") from err


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """``image`` (3, H, W) resized to (3, size, size) with PIL's bicubic filter."""
    from PIL import Image

    resized = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1)
