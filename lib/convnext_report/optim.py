"""Parameter groups, optimisers and per-iteration learning-rate schedules, through timm.

timm makes the groups (no weight decay on biases, ``ndim <= 1`` parameters and ``no_weight_decay()``; with
``layer_decay`` one layer per stage). Ours: the head (``models.is_head_param``) keeps ``lr_scale`` 1 and gets
``head_weight_decay``, and the backbone's ``lr_scale`` is multiplied by ``backbone_lr_scale``; timm's schedulers
apply each group's ``lr_scale`` at every update. On CUDA the optimiser is fused where torch has a fused kernel
for it (AdamW, SGD), else ``foreach`` (RAdam) (:func:`implementation_kwargs`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
from timm.models import group_parameters
from timm.optim import (
    create_optimizer_v2, get_optimizer_info, param_groups_layer_decay, param_groups_weight_decay,
)
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn

from .choices import OPTIMIZERS
from .config import TrainConfig
from .models import is_head_param

__all__ = ["build_optimizer", "build_scheduler", "current_lr", "implementation_kwargs", "param_groups",
           "set_implementation"]


class _StageLayers:
    """``model`` as timm's layer decay reads it, with one layer per stage (``group_matcher(coarse=True)``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.model.named_parameters()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return self.model.group_matcher(coarse=True)


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    head_weight_decay: float | None = None,
    backbone_lr_scale: float = 1.0,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Trainable parameters of ``model`` in timm's groups, each split into head and backbone (see above).

    Each group: ``params``, ``param_names``, ``weight_decay``, ``lr_scale`` and a readable ``group``
    label (``"head/decay"``, ``"backbone/no_decay"``, with layer decay ``"backbone.layer3/decay"``).
    Frozen parameters are left out.
    """
    no_decay = sorted(getattr(model, "no_weight_decay", set)())
    # timm sorts parameters into decay / no-decay groups (and lr scales per layer); a placeholder
    # decay of 1 keeps its split even when weight_decay is 0, the real values are set below
    if layer_decay and hasattr(model, "group_matcher"):
        made = param_groups_layer_decay(_StageLayers(model), weight_decay=1.0, layer_decay=layer_decay,
                                        no_weight_decay_list=no_decay)
        layers = group_parameters(model, model.group_matcher(coarse=True), reverse=True)
    else:
        made = param_groups_weight_decay(model, weight_decay=1.0, no_weight_decay_list=no_decay)
        layers = None
    names = {id(p): n for n, p in model.named_parameters()}
    head_wd = weight_decay if head_weight_decay is None else head_weight_decay
    groups: dict[str, dict[str, Any]] = {}
    for made_group in made:
        decay = made_group["weight_decay"] > 0
        for param in made_group["params"]:
            name = names[id(param)]
            if is_head_param(name):
                key, scale, wd = "head", 1.0, head_wd
            else:
                key = "backbone" if layers is None else f"backbone.layer{layers[name]}"
                scale, wd = backbone_lr_scale * made_group.get("lr_scale", 1.0), weight_decay
            key += "/decay" if decay else "/no_decay"
            group = groups.setdefault(key, {"group": key, "params": [], "param_names": [],
                                            "weight_decay": wd if decay else 0.0, "lr_scale": scale})
            group["params"].append(param)
            group["param_names"].append(name)
    return list(groups.values())


def implementation_kwargs(name: str, device: torch.device | str) -> dict[str, bool]:
    """How optimiser ``name`` (one of ``choices.OPTIMIZERS``) should run on ``device``.

    CUDA: ``{"fused": True}`` when torch's class of that optimiser takes ``fused``, else
    ``{"foreach": True}``; any other device: ``{}`` (torch's defaults, as before).
    """
    if torch.device(device).type != "cuda":
        return {}
    accepted = inspect.signature(get_optimizer_info(name.lower()).opt_class).parameters
    return {"fused": True} if "fused" in accepted else {"foreach": True}


def set_implementation(optimizer: torch.optim.Optimizer, device: torch.device | str) -> None:
    """Re-apply :func:`implementation_kwargs` to every group, e.g. after ``load_state_dict``
    restored the flags of a checkpoint written on another device; a fused optimiser also gets
    its ``step`` counters on the parameters' device (where its kernel reads them)."""
    name = type(optimizer).__name__.lower()
    wanted: dict[str, Any] = {"fused": None, "foreach": None}
    wanted.update(implementation_kwargs(name, device) if name in OPTIMIZERS else {})
    for group in optimizer.param_groups:
        group.update({k: v for k, v in wanted.items() if k in group})
        if group.get("fused"):
            for param in group["params"]:
                state = optimizer.state.get(param, {})
                if torch.is_tensor(state.get("step")):
                    state["step"] = state["step"].to(device=param.device, dtype=torch.float32)


def build_optimizer(model: nn.Module, config: TrainConfig, *, device: torch.device | str | None = None
                    ) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` over :func:`param_groups` (timm's factory).

    ``config.momentum`` is SGD's momentum and Adam's beta1; ``config.lr`` is the head's lr.
    ``device`` (default: where the model's first trainable parameter is) picks the
    implementation (:func:`implementation_kwargs`).
    """
    name = config.optimizer
    groups = param_groups(
        model,
        weight_decay=config.weight_decay,
        head_weight_decay=config.head_weight_decay,
        backbone_lr_scale=config.backbone_lr_scale,
        layer_decay=config.layer_decay,
    )
    kwargs: dict[str, Any] = {"nesterov": True} if name == "sgd" else {"betas": (config.momentum, 0.999), "eps": 1e-8}
    if device is None:
        device = next((p.device for g in groups for p in g["params"]), torch.device("cpu"))
    kwargs.update(implementation_kwargs(name, device))
    return create_optimizer_v2(groups, opt=name, lr=config.lr, momentum=config.momentum, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Scheduler:
    """timm scheduler stepped per iteration (``scheduler.step_update(num_updates)``).

    ``cosine``: linear warmup from 0 over ``warmup_epochs``, then cosine to ``lr * min_lr_ratio``
    at the last iteration; ``constant``: the same warmup, then ``lr``. Each group gets ``lr * lr_scale``.
    """
    if steps_per_epoch < 1:
        raise ValueError("steps_per_epoch must be >= 1: the training set is smaller than one batch")
    # "constant" is timm's step schedule with decay rate 1 (works with every timm >= 1.0)
    constant = config.schedule == "constant"
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched="step" if constant else "cosine",
        decay_rate=1.0,  # only read by "step"
        num_epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        warmup_lr=0.0,
        min_lr=config.lr * config.min_lr_ratio,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    return scheduler


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest group lr (the head's, whose ``lr_scale`` is 1)."""
    return max(group["lr"] for group in optimizer.param_groups)
