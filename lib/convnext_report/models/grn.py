"""A Global Response Normalization (ConvNeXt V2) that keeps its input's dtype.

timm's ``GlobalResponseNorm`` computes ``x + bias + weight * (x * Nx)`` with fp32 ``weight`` and
``bias``, and under CUDA autocast its ``x.norm`` runs in fp32, so a bf16 activation leaves the layer
as fp32 and every later elementwise op reads and writes twice the bytes. The subclass here computes
the per-channel statistics in fp32 (a ``(B, 1, 1, C)`` tensor: cheap and accurate), casts them and
the parameters to the input's dtype, and returns the input's dtype. Parameter names and shapes are
timm's, so state dicts (and checkpoints) load unchanged.
"""

from __future__ import annotations

import torch
from timm.layers.grn import GlobalResponseNorm as TimmGlobalResponseNorm
from torch import nn

__all__ = ["GlobalResponseNorm", "convert_grn"]


class GlobalResponseNorm(TimmGlobalResponseNorm):
    """timm's GRN (same parameters, same formula) whose output dtype is the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(x, 2, dim=self.spatial_dim, keepdim=True, dtype=torch.float32)
        scale = (norms / (norms.mean(dim=self.channel_dim, keepdim=True) + self.eps)).to(x.dtype)
        weight = self.weight.to(x.dtype).view(self.wb_shape)
        bias = self.bias.to(x.dtype).view(self.wb_shape)
        return x + torch.addcmul(bias, weight, x * scale)


def convert_grn(module: nn.Module) -> nn.Module:
    """Replace every timm ``GlobalResponseNorm`` in ``module`` by :class:`GlobalResponseNorm`.

    Works in place on children and returns the (possibly new) root. The new layers take over the
    old ones' parameter objects (same values, devices and names), so an optimiser built before
    still holds them and ``state_dict`` keys do not change.
    """
    out = module
    if type(module) is TimmGlobalResponseNorm:
        out = GlobalResponseNorm(module.weight.shape[0], eps=module.eps, channels_last=module.channel_dim == -1,
                                 device="meta")
        out.weight, out.bias = module.weight, module.bias
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_grn(child))
    return out
