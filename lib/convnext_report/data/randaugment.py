"""torchvision's RandAugment for a whole batch in a fixed, small number of kernels.

The op set, magnitude bins and signs are torchvision's (``transforms.v2.RandAugment``), written
here as data. Every image draws its own ``num_ops`` ops and signs, and each op slot runs three
whole-batch stages whatever ops were drawn, so nothing depends on tensor values on the host:

1. geometry: one ``grid_sample`` (nearest, torchvision's default; zero fill) with a per-sample
   inverse affine matrix (identity unless the sample drew ShearX/Y, TranslateX/Y or Rotate), built
   like torchvision's, so single images match ``F.affine`` / ``F.rotate`` exactly;
2. blends: ``x * ratio + degenerate * alpha`` with per-sample factors (Color, Contrast, Sharpness;
   ``ratio=1, alpha=0`` for the others), rounded and clamped as torchvision does for uint8;
3. look-up tables: one 256-entry LUT per image and channel, gathered once: constant LUTs for
   Brightness, Posterize and Solarize (identity for the others), or the AutoContrast / Equalize
   LUT computed from per-channel min/max and histograms (``scatter_add`` + ``cumsum``).

Per-op parameters live in one table indexed by (op, sign), so drawing ops is a table lookup. The
table depends on the image size (translations, shear centre): it is built on the host once per
size and device, the only host-to-device copy.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = ["OPS", "RandAugmentBatch", "op_magnitude"]

MagnitudeFn = Callable[[int, int, int], "torch.Tensor | None"]

#: torchvision ``v2.RandAugment``'s op space, in its order: name -> (magnitudes(num_bins, height, width), signed).
OPS: dict[str, tuple[MagnitudeFn, bool]] = {
    "Identity": (lambda bins, h, w: None, False),
    "ShearX": (lambda bins, h, w: torch.linspace(0.0, 0.3, bins), True),
    "ShearY": (lambda bins, h, w: torch.linspace(0.0, 0.3, bins), True),
    "TranslateX": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, bins), True),
    "TranslateY": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, bins), True),
    "Rotate": (lambda bins, h, w: torch.linspace(0.0, 30.0, bins), True),
    "Brightness": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Color": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Contrast": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Sharpness": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Posterize": (lambda bins, h, w: (8 - (torch.arange(bins) / ((bins - 1) / 4))).round().int(), False),
    "Solarize": (lambda bins, h, w: torch.linspace(1.0, 0.0, bins), False),  # threshold = 255 * value
    "AutoContrast": (lambda bins, h, w: None, False),
    "Equalize": (lambda bins, h, w: None, False),
}
# Rows of the op table, one column per (op, sign): the inverse affine matrix rescaled for
# grid_sample (2 x 3, identity for non-geometric ops); blend ratio, alpha of the gray degenerate
# (Color, Contrast), 1 if that degenerate is the mean gray (Contrast), alpha of the sharpness detail
# (all identity for other ops); Equalize divisors of the count of pixels below the max (255 and
# 510 -> step and step // 2; inf: not Equalize); AutoContrast min span (0; 256: never); the
# constant 256-entry LUT (Brightness, Posterize, Solarize; identity for other ops).
_GEO, _BLEND, _EQ, _AC, _LUT = slice(0, 6), slice(6, 10), slice(10, 12), 12, slice(13, 13 + 256)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_SHARP_DETAIL = [[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]]  # 13 * (blur - identity), blur as torchvision's


def op_magnitude(name: str, magnitude: int, num_bins: int, height: int, width: int) -> float:
    """The unsigned magnitude torchvision uses for op ``name`` at bin ``magnitude`` (0.0 if none)."""
    values = OPS[name][0](num_bins, height, width)
    return 0.0 if values is None else float(values[magnitude])


def _inverse_affine(center: Sequence[float], angle: float, translate: Sequence[float],
                    shear: Sequence[float]) -> list[float]:
    """torchvision's inverse affine matrix (output -> input pixel, centred coordinates), scale 1."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


def _affine_matrix(name: str, m: float, height: int, width: int) -> list[float]:
    """The matrix torchvision's RandAugment passes to ``F.affine`` / ``F.rotate`` for op ``name``."""
    if name in ("ShearX", "ShearY"):  # shear by atan(m) degrees about the top-left corner (center=[0, 0])
        s = math.degrees(math.atan(m))
        return _inverse_affine((-0.5 * width, -0.5 * height), 0.0, (0.0, 0.0), (s, 0.0) if name == "ShearX" else (0.0, s))
    if name in ("TranslateX", "TranslateY"):  # whole pixels, truncated like int(magnitude)
        t = float(int(m))
        return _inverse_affine((0.0, 0.0), 0.0, (t, 0.0) if name == "TranslateX" else (0.0, t), (0.0, 0.0))
    if name == "Rotate":  # F.rotate: angle % 360, counter-clockwise, so the matrix gets -angle
        return _inverse_affine((0.0, 0.0), -(m % 360), (0.0, 0.0), (0.0, 0.0))
    return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _constant_lut(name: str, m: float) -> torch.Tensor:
    """The 256-entry LUT of a pointwise op with a fixed magnitude (identity for the others)."""
    v = torch.arange(256, dtype=torch.uint8)
    if name == "Brightness":  # adjust_brightness: x * factor, clamped, truncated to uint8
        v = v.mul(1.0 + m).clamp_(0, 255).to(torch.uint8)
    elif name == "Posterize":  # keep the top int(m) bits
        bits = int(m)
        v = v if bits >= 8 else v & (((1 << bits) - 1) << (8 - bits))
    elif name == "Solarize":  # invert values >= 255 * m
        v = torch.where(v >= 255.0 * m, v.bitwise_not(), v)
    return v.float()


def _blend_params(name: str, m: float) -> list[float]:
    """Ratio, gray alpha, use-mean and sharpness alpha of op ``name`` (identity for non-blend ops)."""
    if name in ("Color", "Contrast"):  # _blend(image, degenerate, factor): image * factor + degenerate * (1 - factor)
        return [1.0 + m, 1.0 - (1.0 + m), float(name == "Contrast"), 0.0]
    if name == "Sharpness":  # adjust_sharpness: x + (1 - factor) * (blur - x) on the interior
        return [1.0, 0.0, 0.0, 1.0 - (1.0 + m)]
    return [1.0, 0.0, 0.0, 0.0]


def _column(name: str, m: float, height: int, width: int) -> list[float]:
    """The op table column (see ``_GEO`` ... ``_LUT``) of op ``name`` with signed magnitude ``m``."""
    # torchvision's _affine_grid: float32 matrix, transposed and divided by (w / 2, h / 2) for grid_sample
    theta = torch.tensor(_affine_matrix(name, m, height, width)).view(2, 3)
    geo = (theta.T / torch.tensor([0.5 * width, 0.5 * height])).T.flatten().tolist()
    eq = [255.0, 510.0] if name == "Equalize" else [math.inf, math.inf]
    ac = 0.0 if name == "AutoContrast" else 256.0
    return geo + _blend_params(name, m) + eq + [ac] + _constant_lut(name, m).tolist()


class RandAugmentBatch(nn.Module):
    """torchvision RandAugment with ``num_ops`` ops and signs drawn per sample, for uint8 or float batches.

    ``ops`` restricts the op set (default: all 14 of torchvision's, in its order), e.g. to show one
    op. ``forward`` draws ops and signs on the batch's device from ``generator``; :meth:`apply`
    takes them as tensors. uint8 in gives uint8 out; float in (integer values in 0..255) gives float
    out. Only zero fill; ``interpolation`` is "nearest" (torchvision's default) or "bilinear".
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        ops: Sequence[str] | None = None,
        interpolation: str = "nearest",
    ):
        super().__init__()
        self.ops = list(OPS) if ops is None else list(ops)
        unknown = [o for o in self.ops if o not in OPS]
        if unknown or not self.ops:
            raise ValueError(f"unknown RandAugment op(s) {unknown}; choose from {list(OPS)}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be in 0..{num_magnitude_bins - 1}, got {magnitude}")
        if num_ops < 0:
            raise ValueError(f"num_ops must be >= 0, got {num_ops}")
        self.interpolation = str(getattr(interpolation, "value", interpolation)).lower()
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.num_ops, self.magnitude, self.num_magnitude_bins = num_ops, magnitude, num_magnitude_bins
        kernel = torch.tensor(_SHARP_DETAIL).div_(13.0).expand(3, 1, 3, 3).contiguous()
        self.register_buffer("sharp_detail", kernel, persistent=False)
        self.register_buffer("levels", torch.arange(256.0).view(1, 1, 256), persistent=False)
        self.register_buffer("no_counts", torch.zeros(1, 1, 256), persistent=False)
        self.register_buffer("one", torch.ones(1, 1, 1), persistent=False)
        self._tables: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _signed(self, name: str, negative: bool, height: int, width: int) -> float:
        m = op_magnitude(name, self.magnitude, self.num_magnitude_bins, height, width)
        return -m if negative and OPS[name][1] else m

    def magnitudes(self, height: int, width: int) -> list[tuple[float, bool]]:
        """(magnitude, signed) per op for this image size, as torchvision computes them."""
        return [(self._signed(name, False, height, width), OPS[name][1]) for name in self.ops]

    def table(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(base grid (3, H*W), op table (D, 2K)) for this image size on ``device``.

        Column ``2 * op + negative`` holds everything op ``self.ops[op]`` needs (rows: ``_GEO`` ...
        ``_LUT``). Built on the host once per image size and device (one small copy), then reused.
        """
        key = (height, width, torch.device(device))
        if key not in self._tables:
            xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=device)
            ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=device)
            base = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width),
                                torch.ones(height, width, device=device)]).view(3, -1)  # as torchvision's base_grid
            columns = [_column(name, self._signed(name, neg, height, width), height, width)
                       for name in self.ops for neg in (False, True)]
            self._tables[key] = base, torch.tensor(columns).T.contiguous().to(device)
        return self._tables[key]

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # one uniform draw of (op, sign) per image and slot: a uniform op and, independently, a
        # negative sign with probability 1/2, which is torchvision's law (its rand() <= 0.5)
        keys = torch.randint(2 * len(self.ops), (self.num_ops, images.shape[0]), generator=generator,
                             device=images.device)
        return self._augment(images, keys)

    def apply(self, images: torch.Tensor, op: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """Apply op ``op[i, j]`` (index into ``self.ops``) with sign ``negative[i, j]`` to image j in slot i."""
        return self._augment(images, torch.add(negative, op, alpha=2))

    def _augment(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if keys.shape[0] == 0:
            return images
        x = images.float() if images.dtype == torch.uint8 else images
        b, c, h, w = x.shape
        base, table = self.table(h, w, x.device)
        params = table[:, keys]  # (D, num_ops, B)
        # sampling grids of all slots in one bmm: x and y planes (2, num_ops * B, H * W)
        grids = torch.bmm(params[_GEO].view(2, 3, -1).transpose(1, 2), base.expand(2, -1, -1))
        for grid, p in zip(grids.view(2, *keys.shape, h, w).permute(1, 2, 3, 4, 0), params.unbind(1)):
            x = nnf.grid_sample(x, grid, mode=self.interpolation, padding_mode="zeros", align_corners=False)
            if self.interpolation == "bilinear":
                x = x.round_()
            x = self._blend(x, *p[_BLEND, :, None, None, None])
            x = self._lookup(x, p[_EQ].T[:, None, :], p[_AC, :, None, None], p[_LUT].T[:, None, :])
        return x.to(torch.uint8) if images.dtype == torch.uint8 else x

    def _blend(self, x: torch.Tensor, ratio: torch.Tensor, gray_alpha: torch.Tensor, use_mean: torch.Tensor,
               sharp_alpha: torch.Tensor) -> torch.Tensor:
        """Color / Contrast / Sharpness with per-sample factors, rounded like torchvision (untruncated)."""
        red, green, blue = x.unbind(1)
        gray = red.mul(_GRAY[0]).add_(green, alpha=_GRAY[1]).add_(blue, alpha=_GRAY[2]).floor_().unsqueeze(1)
        degenerate = torch.lerp(gray, gray.mean(dim=(1, 2, 3), keepdim=True), use_mean)  # exact for weights 0, 1
        # round(blur) - x on the interior, 0 on the border (which adjust_sharpness leaves as is)
        # (channels-last: oneDNN's depthwise conv is ~20x faster on CPU that way)
        blur = nnf.conv2d(x.contiguous(memory_format=torch.channels_last), self.sharp_detail, groups=3)
        detail = nnf.pad(blur.round_(), (1, 1, 1, 1))
        out = torch.addcmul(x * ratio, degenerate, gray_alpha)  # one fma, like _blend's mul().add_(alpha=)
        out = torch.addcmul(out, detail, sharp_alpha)  # at most one alpha is nonzero: out + 0 * d is exact
        return out.clamp_(0, 255)

    def _lookup(self, x: torch.Tensor, eq_div: torch.Tensor, ac_span: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
        """Truncate to uint8 levels and map each image/channel through its LUT (const, AutoContrast or Equalize)."""
        b, c, h, w = x.shape
        idx = x.long().view(b, c, h * w)
        hist = self.no_counts.expand(b, c, -1).scatter_add(-1, idx, self.one.expand_as(idx))
        below = hist.cumsum(-1) - hist  # pixels darker than each level
        lo, hi = idx.aminmax(dim=-1, keepdim=True)
        # Equalize, PIL's LUT as torchvision: step = (pixels below the max) // 255; step 0 (or not Equalize) keeps x
        # (all operands are >= 0 here, so rounding_mode="trunc" is floor division, and faster on CPU)
        step, half = torch.div(below.gather(-1, hi), eq_div, rounding_mode="trunc").split(1, dim=-1)
        equalized = torch.div(below + half, step, rounding_mode="trunc")
        # AutoContrast: (v - min) / ((max - min) / 255); a flat channel (or not AutoContrast) keeps x
        span = hi - lo
        stretched = torch.div(self.levels - lo, span * (1.0 / 255), rounding_mode="trunc")
        lut = torch.where(step > 0, equalized, torch.where(span > ac_span, stretched, lut))
        return lut.clamp_(max=255).gather(-1, idx).view(b, c, h, w)

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, ops={len(self.ops)}, {self.interpolation}"
