"""Dynamic Tanh (DyT), a drop-in replacement for LayerNorm.

Zhu, Chen, He, LeCun, Liu, "Transformers without Normalization" (CVPR 2025); this mirrors
``dynamic_tanh.py`` of github.com/jiachenzhu/DyT: one module and one conversion function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import nn

__all__ = ["DynamicTanh", "convert_ln_to_dyt", "dyt_alphas"]

try:  # channels-first LayerNorm variants of timm (all subclass nn.LayerNorm)
    from timm.layers.norm import LayerNorm2dFp32, LayerNormExp2d

    _CHANNELS_FIRST_LN: tuple[type, ...] = (LayerNorm2d, LayerNorm2dFp32, LayerNormExp2d)
except ImportError:  # older timm
    _CHANNELS_FIRST_LN = (LayerNorm2d,)


class DynamicTanh(nn.Module):
    """``DyT(x) = weight * tanh(alpha * x) + bias`` with a learnable scalar ``alpha``.

    The output has the input's dtype (bf16 stays bf16 under autocast); the parameters stay fp32.

    ``channels_last=True`` expects ``(..., C)`` inputs (like ``nn.LayerNorm``);
    ``False`` expects ``(B, C, H, W)`` (like timm's ``LayerNorm2d``).
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        channels_last: bool,
        alpha_init: float = 0.5,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(normalized_shape, int):
            shape = tuple(normalized_shape)
            if len(shape) != 1:
                raise ValueError(f"DynamicTanh normalises one channel dimension, got shape {shape}")
            normalized_shape = shape[0]
        dd = {"device": device, "dtype": dtype}
        self.normalized_shape = int(normalized_shape)
        self.channels_last = channels_last
        self.alpha_init = float(alpha_init)
        self.alpha = nn.Parameter(torch.full((1,), self.alpha_init, **dd))
        self.weight = nn.Parameter(torch.ones(self.normalized_shape, **dd))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape, **dd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # computed in the input's dtype: fp32 parameters (kept for the optimiser) would otherwise
        # promote a bf16 activation under autocast to fp32; ``.to`` is free when the dtypes agree
        alpha, weight, bias = self.alpha.to(x.dtype), self.weight.to(x.dtype), self.bias.to(x.dtype)
        x = torch.tanh(alpha * x)
        if self.channels_last:
            return x * weight + bias
        shape = (-1,) + (1,) * (x.ndim - 2)  # broadcast over the spatial dims
        return x * weight.view(shape) + bias.view(shape)

    def extra_repr(self) -> str:
        return (
            f"normalized_shape={self.normalized_shape}, alpha_init={self.alpha_init}, "
            f"channels_last={self.channels_last}"
        )


def convert_ln_to_dyt(module: nn.Module, alpha_init: float = 0.5) -> nn.Module:
    """Replace every ``nn.LayerNorm`` (timm's ``LayerNorm2d`` as channels-first) by ``DynamicTanh``.

    Works in place on children and returns the (possibly new) root module. As in the DyT
    repository, the new layers start fresh (``alpha=alpha_init``, weight 1, bias 0).
    """
    out = module
    if isinstance(module, nn.LayerNorm):
        ref = module.weight if module.weight is not None else None
        out = DynamicTanh(
            module.normalized_shape,
            channels_last=not isinstance(module, _CHANNELS_FIRST_LN),
            alpha_init=alpha_init,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
    for name, child in module.named_children():
        out.add_module(name, convert_ln_to_dyt(child, alpha_init))
    return out


def dyt_alphas(model: nn.Module) -> dict[str, float]:
    """``{layer name: alpha}`` of every :class:`DynamicTanh` in ``model`` (empty without DyT)."""
    return {name: float(m.alpha.detach().reshape(-1)[0]) for name, m in model.named_modules()
            if isinstance(m, DynamicTanh)}
