"""Build any ConvNeXt V1/V2 through timm, with DyT, an attention head, a small-input stem,
pretrained weights and a frozen backbone; plus the head/backbone naming rule optimisers rely on."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from timm.layers import resample_patch_embed, trunc_normal_
from torch import nn

from ..choices import DEFAULT_STEM_STRIDE, HEADS, NORMS, STEM_STRIDES
from .dyt import convert_ln_to_dyt
from .grn import convert_grn
from .heads import AttentionPoolHead, check_num_heads
from .pretrained import (
    HEAD_PREFIX, STEM_WEIGHT, create_timm_model, hub_report, is_hub_id, load_state_dict_into, read_checkpoint,
)
from .variants import get_variant

if TYPE_CHECKING:  # config imports the variant table from this package: no runtime import back
    from ..config import TrainConfig



def _check_choice(kind: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices are: {', '.join(map(str, choices))}")


def set_stem_stride(model: nn.Module, stride: int, *, keep_weights: bool = False) -> nn.Module:
    """Make the patchify stem ``stride x stride`` with stride ``stride``.

    The new kernel is freshly initialised, or, with ``keep_weights``, the old kernel resampled to
    the new size (timm's ``resample_patch_embed``, as for pretrained weights). timm's
    ``patch_size=2`` adds a stride-2 downsample to stage 0 and so keeps the overall stride at 4;
    replacing the stem conv instead gives stage-1..4 maps of ``H/s .. H/(8s)``.
    """
    _check_choice("stem_stride", stride, STEM_STRIDES)
    old = model.stem[0]
    if old.stride[0] == stride:
        return model
    new = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=stride, stride=stride,
                    bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
    if keep_weights:
        with torch.no_grad():
            new.weight.copy_(resample_patch_embed(old.weight.float(), [stride, stride]).to(old.weight.dtype))
            if new.bias is not None:
                new.bias.copy_(old.bias)
    else:
        trunc_normal_(new.weight, std=0.02)  # as timm's ConvNeXt init
        if new.bias is not None:
            nn.init.zeros_(new.bias)
    model.stem[0] = new
    for i, info in enumerate(getattr(model, "feature_info", [])):
        info["reduction"] = stride * 2**i
    return model


def install_attention_head(model: nn.Module, *, num_heads: int = 8, drop_rate: float = 0.0) -> nn.Module:
    """Replace ``model.head`` by an :class:`AttentionPoolHead` on the final-stage features."""
    check_num_heads(model.num_features, num_heads)
    ref = model.stem[0].weight
    model.head = AttentionPoolHead(model.num_features, model.num_classes, num_heads=num_heads,
                                   drop_rate=drop_rate, device=ref.device, dtype=ref.dtype)
    model.head_hidden_size = model.head.num_features
    return model


def freeze_backbone_(model: nn.Module) -> nn.Module:
    """``requires_grad=False`` for every parameter outside ``head.*``."""
    for name, param in model.named_parameters():
        param.requires_grad_(is_head_param(name))
    return model


def build_model(
    name: str,
    num_classes: int,
    *,
    drop_path_rate: float = 0.0,
    norm: str = "layernorm",
    dyt_alpha_init: float = 0.5,
    head: str = "linear",
    head_num_heads: int = 8,
    head_dropout: float = 0.0,
    stem_stride: int = DEFAULT_STEM_STRIDE,
    pretrained: str | None = None,
    freeze_backbone: bool = False,
) -> nn.Module:
    """A timm ConvNeXt ``name`` with ``num_classes`` outputs and the options of the book.

    - ``norm="dyt"``: every LayerNorm becomes :class:`DynamicTanh` (alpha starts at ``dyt_alpha_init``).
    - ``head="attention"``: :class:`AttentionPoolHead` with ``head_num_heads`` heads replaces ``model.head``.
    - ``head_dropout``: dropout before the classifier (either head).
    - ``stem_stride``: 4 (ImageNet), 2 (the default, as in ``TrainConfig``) or 1 for small images.
    - ``pretrained``: timm id or local checkpoint; the load report is ``model.pretrained_report``.
    - ``freeze_backbone``: only ``head.*`` parameters train.

    V2 models get :class:`~convnext_report.models.grn.GlobalResponseNorm` (timm's, computed in the
    input's dtype), with timm's parameter names.
    """
    variant = get_variant(name)
    _check_choice("norm", norm, NORMS)
    _check_choice("head", head, HEADS)
    _check_choice("stem_stride", stem_stride, STEM_STRIDES)
    hub = bool(pretrained) and is_hub_id(pretrained)
    # timm builds the network; for a hub id it also downloads and loads the weights (all but the classifier)
    model = create_timm_model(variant.name, pretrained if hub else None, num_classes=num_classes,
                    drop_path_rate=drop_path_rate, drop_rate=head_dropout)
    model = convert_grn(model)  # V2: GRN in the input's dtype (bf16 stays bf16); same parameter names
    report = hub_report(model, pretrained) if hub else None
    if report is not None and model.stem[0].stride[0] != stem_stride:
        report["resampled"].append(f"{STEM_WEIGHT}: stem kernel resampled {tuple(model.stem[0].kernel_size)} -> "
                                   f"{(stem_stride, stem_stride)} (stem stride differs from the checkpoint)")
        report["notes"].extend(report["resampled"])
    set_stem_stride(model, stem_stride, keep_weights=hub)
    if head == "attention":
        install_attention_head(model, num_heads=head_num_heads, drop_rate=head_dropout)
    converted = False
    if pretrained and not hub:
        state, origin = read_checkpoint(pretrained)
        if norm == "dyt" and any(k.endswith(".alpha") for k in state):
            model, converted = convert_ln_to_dyt(model, dyt_alpha_init), True  # a DyT checkpoint
        report = load_state_dict_into(model, state, source=origin)
    if norm == "dyt" and not converted:
        model = convert_ln_to_dyt(model, dyt_alpha_init)
        if report is not None:
            report["notes"].append("LayerNorms converted to DyT after loading (fresh alpha, weight, bias)")
    if freeze_backbone:
        freeze_backbone_(model)
    model.pretrained_report = report
    return model


#: :func:`build_model`'s options (its keyword-only parameters), each a ``TrainConfig`` field of the same name
MODEL_OPTIONS = tuple(name for name, p in inspect.signature(build_model).parameters.items() if p.kind is p.KEYWORD_ONLY)


def model_options(config: "TrainConfig") -> dict[str, Any]:
    """The values of :data:`MODEL_OPTIONS` in ``config``."""
    return {name: getattr(config, name) for name in MODEL_OPTIONS}


def build_model_from_config(config: "TrainConfig", num_classes: int) -> nn.Module:
    """:func:`build_model` of ``config.model`` with the config's :data:`MODEL_OPTIONS`."""
    return build_model(config.model, num_classes, **model_options(config))


# --- parameter naming rules (used by optim.param_groups) ---

def is_head_param(name: str) -> bool:
    """True for classifier parameters: every head (linear or attention) lives under ``head.``."""
    return name.startswith(HEAD_PREFIX)


__all__ = [
    "HEADS", "MODEL_OPTIONS", "NORMS", "STEM_STRIDES", "build_model", "build_model_from_config", "freeze_backbone_",
    "install_attention_head", "is_head_param", "model_options", "set_stem_stride",
]
