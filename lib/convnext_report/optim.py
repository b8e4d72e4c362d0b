"""Parameter groups, optimisers and per-iteration learning-rate schedules.

Follows timm's ``optim/_param_groups.py``: every group carries ``lr_scale`` and its own
``weight_decay``; timm's schedulers multiply the scheduled lr by ``lr_scale`` at each
update. Groups are keyed by (head or backbone, backbone layer, decay or not):

- no weight decay on biases and 1-D parameters, nor on any parameter of a normalisation module
  (LayerNorm, DyT ``alpha``/``weight``/``bias``, GRN ``gamma``/``beta``): the rule is
  ``models.no_weight_decay_param_names``, plus the model's ``no_weight_decay()`` names;
- the head (``models.is_head_param``) has ``lr_scale`` 1 and ``head_weight_decay``;
- the backbone has ``lr_scale = backbone_lr_scale * layer_decay ** (depth below the head)``,
  depths (``models.stage_index``) being 0 for the stem, i+1 for stage i, S+1 for the head.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn

from .config import TrainConfig

OPTIMIZERS: dict[str, str] = {
    "sgd": "SGD with Nesterov momentum (torch.optim.SGD, nesterov=True)",
    "radam": "Rectified Adam (torch.optim.RAdam)",
    "adamw": "Adam with decoupled weight decay (torch.optim.AdamW)",
}
SCHEDULES: tuple[str, ...] = ("cosine", "constant")

_STAGE = re.compile(r"^stages\.(\d+)\.")


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float,
    head_weight_decay: float | None = None,
    backbone_lr_scale: float = 1.0,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Trainable parameters of ``model`` grouped by lr scale and weight decay.

    Each group: ``params``, ``param_names``, ``weight_decay``, ``lr_scale`` and a readable
    ``group`` label (``"head/decay"``, ``"backbone/no_decay"``, with layer decay ``"backbone.layer3/decay"``). Frozen parameters
    are left out.
    """
    from .models import is_head_param, no_weight_decay_param_names, stage_index

    head_wd = weight_decay if head_weight_decay is None else head_weight_decay
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = no_weight_decay_param_names(model) | set(getattr(model, "no_weight_decay", set)())
    stage_ids = [int(m.group(1)) for n, _ in model.named_parameters() if (m := _STAGE.match(n))]
    num_stages = max(stage_ids) + 1 if stage_ids else 0
    top = num_stages + 1  # the head's depth

    groups: dict[str, dict[str, Any]] = {}
    for name, param in named:
        decay = not (param.ndim <= 1 or name.endswith(".bias") or name in no_decay)
        if is_head_param(name):
            key, scale, wd = "head", 1.0, head_wd
        else:
            layer = min(stage_index(name, num_stages), num_stages)  # norm_pre: with the last stage
            scale = backbone_lr_scale * (layer_decay ** (top - layer) if layer_decay else 1.0)
            key = f"backbone.layer{layer}" if layer_decay else "backbone"
            wd = weight_decay
        key += "/decay" if decay else "/no_decay"
        group = groups.setdefault(
            key,
            {"group": key, "params": [], "param_names": [], "weight_decay": wd if decay else 0.0, "lr_scale": scale},
        )
        group["params"].append(param)
        group["param_names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` over :func:`param_groups` (timm's factory).

    ``config.momentum`` is SGD's momentum and Adam's beta1; ``config.lr`` is the head's lr.
    """
    name = config.optimizer.lower()
    if name not in OPTIMIZERS:
        choices = ", ".join(f"{k} ({v})" for k, v in OPTIMIZERS.items())
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of: {choices}")
    groups = param_groups(
        model,
        weight_decay=config.weight_decay,
        head_weight_decay=config.head_weight_decay,
        backbone_lr_scale=config.backbone_lr_scale,
        layer_decay=config.layer_decay,
    )
    kwargs: dict[str, Any] = {"nesterov": True} if name == "sgd" else {"betas": (config.momentum, 0.999), "eps": 1e-8}
    return create_optimizer_v2(groups, opt=name, lr=config.lr, momentum=config.momentum, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Scheduler:
    """timm scheduler stepped per iteration (``scheduler.step_update(num_updates)``).

    ``cosine``: linear warmup from 0 over ``warmup_epochs``, then cosine to ``lr * min_lr_ratio``
    at the last iteration; ``constant``: the same warmup, then ``lr``. Each group gets ``lr * lr_scale``.
    """
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
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
