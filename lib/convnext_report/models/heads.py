"""A lightweight self-attention classifier head for the final ConvNeXt stage (seed 000).

The final feature map is flattened to spatial tokens; one multi-head self-attention layer
(timm's ``Attention``, fused ``scaled_dot_product_attention``) with a residual connection and
LayerNorm lets every location attend to every other; tokens are mean-pooled, then dropout
and a linear classifier. It follows timm's head protocol (``forward(x, pre_logits)``,
``reset(num_classes, pool_type)``) so ``forward_head`` and ``reset_classifier`` keep working.
"""

from __future__ import annotations

import torch
from timm.layers import Attention, trunc_normal_
from torch import nn

__all__ = ["AttentionPoolHead", "check_num_heads"]


def check_num_heads(dim: int, num_heads: int) -> None:
    """Raise ``ValueError`` unless ``num_heads`` is positive and divides ``dim``."""
    if num_heads < 1 or dim % num_heads:
        divisors = [d for d in range(1, min(dim, 64) + 1) if dim % d == 0]
        raise ValueError(
            f"head_num_heads={num_heads} must divide the final-stage width {dim}; "
            f"choose one of {divisors}"
        )


class AttentionPoolHead(nn.Module):
    """tokens -> LayerNorm(tokens + MHSA(tokens)) -> mean pool -> dropout -> linear."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_heads: int = 8,
        drop_rate: float = 0.0,
        attn_drop: float = 0.0,
        qkv_bias: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_num_heads(in_features, num_heads)
        dd = {"device": device, "dtype": dtype}
        self.in_features = self.num_features = in_features
        self.num_heads = num_heads
        self.attn = Attention(in_features, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, **dd)
        self.norm = nn.LayerNorm(in_features, eps=1e-6, **dd)
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Identity()
        self.reset(num_classes, device=device, dtype=dtype)
        for m in (self.attn.qkv, self.attn.proj):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def reset(
        self,
        num_classes: int,
        pool_type: str | None = None,
        reset_other: bool = False,
        in_features: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """New classifier for ``num_classes`` (0: identity); tokens are always mean-pooled."""
        if pool_type not in (None, "avg"):
            raise ValueError(f"AttentionPoolHead always mean-pools its tokens; got pool_type={pool_type!r}")
        if in_features is not None and in_features != self.in_features:
            raise ValueError(f"AttentionPoolHead was built for {self.in_features} channels, not {in_features}")
        self.num_classes = num_classes
        if num_classes > 0:
            self.fc = nn.Linear(self.in_features, num_classes, device=device, dtype=dtype)
            trunc_normal_(self.fc.weight, std=0.02)
            nn.init.zeros_(self.fc.bias)
        else:
            self.fc = nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C)
        tokens = self.norm(tokens + self.attn(tokens))
        x = self.drop(tokens.mean(dim=1))
        return x if pre_logits else self.fc(x)
