"""Model size and cost: parameters, multiply-accumulates, per-stage feature shapes, and what one training
image costs a run's model (:func:`training_cost`: what the GPU plan and the packed-run memory rule read).

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions incl. depthwise,
matmuls, attention; norms and activations are not counted) as ``flops / 2``. Everything works
on the ``meta`` device, so even ConvNeXt-XL/Huge are measured without allocating weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .choices import DEFAULT_STEM_STRIDE
from .models import MODEL_VARIANTS, build_model, get_variant, model_options

if TYPE_CHECKING:  # the config imports the model table: no runtime import of it here
    from .config import TrainConfig


def _probe(model: nn.Module, image_size: int, in_chans: int = 3) -> torch.Tensor:
    ref = next(model.parameters())
    return torch.zeros(1, in_chans, image_size, image_size, device=ref.device, dtype=ref.dtype)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, image_size: int, *, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass of a ``image_size``-square image (batch 1)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(_probe(model, image_size, in_chans))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def stage_shapes(model: nn.Module, image_size: int) -> list[tuple[str, tuple[int, int, int]]]:
    """``[("stem", (C, H, W)), ("stages.0", ...), ..., ("stages.3", ...)]`` for one input size."""
    if not (hasattr(model, "stem") and hasattr(model, "stages")):
        raise TypeError(f"stage_shapes expects a timm ConvNeXt (with .stem and .stages), got {type(model).__name__}")
    was_training = model.training
    model.eval()
    out: list[tuple[str, tuple[int, int, int]]] = []
    try:
        with torch.no_grad():
            x = model.stem(_probe(model, image_size))
            out.append(("stem", tuple(x.shape[1:])))
            for i, stage in enumerate(model.stages):
                x = stage(x)
                out.append((f"stages.{i}", tuple(x.shape[1:])))
    finally:
        model.train(was_training)
    return out


def complexity_table(
    names: Iterable[str] | None = None,
    image_sizes: Iterable[int] = (224, 64, 32),
    *,
    stem_stride: int = DEFAULT_STEM_STRIDE,
    num_classes: int = 1000,
    device: str | torch.device = "meta",
    **build_kw: Any,
):
    """One row per model: model, family, depths, dims, params_M and ``GMACs_<size>`` per size.

    Models are built with :func:`~convnext_report.models.build_model` (``stem_stride``,
    ``num_classes`` and ``build_kw``) on ``device`` (meta: no memory, no compute).
    """
    sizes = tuple(image_sizes)
    rows = []
    for name in names if names is not None else MODEL_VARIANTS:
        variant = get_variant(name)
        with torch.device(device):
            model = build_model(name, num_classes, stem_stride=stem_stride, **build_kw)
        row: dict[str, Any] = {
            "model": name,
            "family": variant.family,
            "depths": variant.depths,
            "dims": variant.dims,
            "params_M": count_parameters(model) / 1e6,
        }
        for size in sizes:
            row[f"GMACs_{size}"] = count_macs(model, size) / 1e9
        rows.append(row)
        del model
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class TrainingCost:
    """A run's model for one image, measured on the meta device: ``params``, forward ``macs``, and the bytes
    autograd saves for the backward pass (fp32; tensors saved twice count twice, so it errs high)."""

    params: int
    macs: int
    saved_bytes: int


def training_cost(config: "TrainConfig", num_classes: int) -> TrainingCost:
    """:class:`TrainingCost` of ``config``'s model (its :data:`~convnext_report.models.MODEL_OPTIONS`)."""
    options = {**model_options(config), "pretrained": None}
    return _training_cost(config.model, config.image_size, num_classes, tuple(sorted(options.items())))


@lru_cache(maxsize=64)
def _training_cost(name: str, image_size: int, num_classes: int, options: tuple) -> TrainingCost:
    with torch.device("meta"):
        model = build_model(name, num_classes, **dict(options))

    def saved(batch: int) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.zeros(batch, 3, image_size, image_size, device="meta"))
        return total

    # batch 2 minus batch 1: the weights some ops save (e.g. a linear's) cancel out
    return TrainingCost(count_parameters(model), count_macs(model, image_size), saved(2) - saved(1))


__all__ = ["TrainingCost", "complexity_table", "count_macs", "count_parameters", "stage_shapes", "training_cost"]
