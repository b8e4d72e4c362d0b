"""One training epoch and one evaluation pass (after facebookresearch/ConvNeXt ``engine.py``).

The same loop serves every chapter: bf16 autocast on CUDA (fp32 on CPU), optional
channels_last inputs, optional Mixup/CutMix, gradient clipping, a per-iteration timm
scheduler, DDP (metrics summed over processes) and a ``tqdm.auto`` bar that works in
notebooks and can be switched off.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import TqdmExperimentalWarning, TqdmWarning

with warnings.catch_warnings():  # without ipywidgets, tqdm.auto warns and falls back to text bars: fine here
    warnings.simplefilter("ignore", (TqdmWarning, TqdmExperimentalWarning))
    from tqdm.auto import tqdm

from .distributed import all_reduce_sum, is_enabled
from .evaluation import EvalResult
from .optim import current_lr

__all__ = ["CHECK_EVERY", "NonFiniteLossError", "autocast", "evaluate", "train_one_epoch"]


CHECK_EVERY = 20  #: steps between NaN/inf checks (each check is one host-device sync)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def autocast(device: torch.device, amp: bool) -> AbstractContextManager:
    """bf16 autocast on CUDA when ``amp``; plain fp32 elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _set_train_mode(model: nn.Module) -> None:
    """``model.train()``, but submodules whose parameters are all frozen stay in eval mode
    (a frozen backbone keeps drop path and dropout off)."""
    model.train()
    stack = [model]
    while stack:
        for child in stack.pop().children():
            params = list(child.parameters())
            if params and not any(p.requires_grad for p in params):
                child.eval()
            elif params:
                stack.append(child)


def _check_losses(losses: list[torch.Tensor], first_step: int, steps: int, epoch: int, lr: float) -> float:
    """Raise :class:`NonFiniteLossError` at the first NaN/inf among ``losses`` (on any process);
    else return the last loss. One host sync for the whole window."""
    values = torch.stack(losses).tolist()
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if is_enabled():  # every process stops together
        flag = torch.tensor([0.0 if bad is None else 1.0], device=losses[0].device)
        if all_reduce_sum(flag).item() > 0 and bad is None:
            bad = len(values) - 1
    if bad is not None:
        raise NonFiniteLossError(
            f"training loss is {values[bad]} at epoch {epoch} (0-based), step {first_step + bad + 1}/{steps} "
            f"(lr {lr:.3g}): lower the learning rate or set grad_clip (e.g. grad_clip=1.0)"
        )
    losses.clear()
    return values[-1]


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    *,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    amp: bool = True,
    mixup_fn: Callable | None = None,
    grad_clip: float | None = None,
    epoch: int = 0,
    progress: bool = True,
    channels_last: bool = False,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``.

    ``epoch`` is the 0-based epoch index;
    ``scheduler.step_update(epoch * len(loader) + step + 1)`` runs after every optimiser step.
    Returns ``loss`` (mean), ``acc`` (top-1 against the un-mixed labels), ``seconds``,
    ``images_per_second`` (all processes) and ``lr`` (the head lr of the last step).
    Raises :class:`NonFiniteLossError` naming the epoch and step of the first NaN/inf loss (losses
    are checked every ``CHECK_EVERY`` steps, so the GPU is not synchronised at every step).
    """
    _set_train_mode(model)
    steps = len(loader)  # type: ignore[arg-type]
    # running sums stay on the device; losses are checked for NaN/inf every CHECK_EVERY steps
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    pending: list[torch.Tensor] = []
    lr = current_lr(optimizer)
    start = time.perf_counter()
    bar = tqdm(loader, total=steps, desc=f"train {epoch + 1}", disable=not progress, leave=False, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        if channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = labels
        if mixup_fn is not None:
            images, targets = mixup_fn(images, labels)
        with autocast(device, amp):
            logits = model(images)
        loss = criterion(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        lr = current_lr(optimizer)
        optimizer.step()
        if scheduler is not None:
            scheduler.step_update(num_updates=epoch * steps + step + 1)
        pending.append(loss.detach())
        loss_sum += loss.detach().double() * labels.shape[0]
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        count += labels.shape[0]
        if len(pending) == CHECK_EVERY or step == steps - 1:
            last = _check_losses(pending, step + 1 - len(pending), steps, epoch, lr)
            bar.set_postfix(loss=f"{last:.3f}", lr=f"{lr:.2e}", refresh=False)
    totals = all_reduce_sum(torch.stack([loss_sum, correct, loss_sum.new_tensor(float(count))])).tolist()
    seconds = time.perf_counter() - start
    images = max(totals[2], 1.0)
    return {
        "loss": totals[0] / images,
        "acc": totals[1] / images,
        "seconds": seconds,
        "images_per_second": totals[2] / max(seconds, 1e-9),
        "lr": lr,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    amp: bool = True,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Predictions of ``model`` over the whole of ``loader`` (in loader order) as an :class:`EvalResult`."""
    if class_names is None:
        if num_classes is None:
            raise ValueError("evaluate needs num_classes or class_names")
        class_names = [str(i) for i in range(num_classes)]
    k = min(5, len(class_names))
    model.eval()
    labels_all, top_all, conf_all = [], [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for images, labels in tqdm(loader, desc="eval", disable=not progress, leave=False, dynamic_ncols=True):
        if channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        probs, top = logits.softmax(dim=1).topk(k, dim=1)
        labels_all.append(labels.cpu())
        top_all.append(top.cpu())
        conf_all.append(probs[:, 0].cpu())
    labels_np = torch.cat(labels_all).numpy() if labels_all else np.zeros(0, dtype=np.int64)
    top_np = torch.cat(top_all).numpy() if top_all else np.zeros((0, k), dtype=np.int64)
    n = max(len(labels_np), 1)
    return EvalResult(
        labels=labels_np,
        predictions=top_np[:, 0].copy(),
        top5_predictions=top_np,
        confidence=torch.cat(conf_all).numpy() if conf_all else np.zeros(0, dtype=np.float32),
        loss=float(loss_sum.item() / n),
        class_names=list(class_names),
    )
