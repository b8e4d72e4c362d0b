"""One training epoch and one evaluation pass (after facebookresearch/ConvNeXt ``engine.py``).

The same loop serves every chapter: bf16 autocast on CUDA (fp32 on CPU), optional
channels_last inputs, optional Mixup/CutMix, gradient clipping, a per-iteration timm
scheduler, DDP (metrics summed over processes) and ``tqdm.auto`` bars that work in
notebooks and can be switched off.

Nothing inside a step waits for the device (no ``.item()``, no branch on a tensor's value): the
running sums, the gradient norm and the accuracy stay on the device, the losses are checked for
NaN/inf every :data:`CHECK_EVERY` steps, and each epoch ends with one transfer.
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

from .accel import guard_first_step, is_compiled, synchronize
from .distributed import all_reduce_sum, is_enabled
from .errors import UserError
from .evaluation import EvalResult
from .optim import current_lr

__all__ = ["CHECK_EVERY", "NonFiniteLossError", "autocast", "evaluate", "train_one_epoch"]


CHECK_EVERY = 20  #: steps between NaN/inf checks (each check is one host-device sync)


class NonFiniteLossError(UserError, FloatingPointError):
    """A training or selection loss became NaN or infinite."""


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
            f"training loss is {values[bad]} at epoch {epoch + 1}, step {first_step + bad + 1}/{steps} "
            f"(lr {lr:.3g}): lower the learning rate or set grad_clip (e.g. grad_clip=1.0)"
        )
    losses.clear()
    return values[-1]


def _forward_backward(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, criterion: Callable,
                      device: torch.device, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    with autocast(device, amp):
        logits = model(images)
    loss = criterion(logits.float(), targets)
    loss.backward()
    return logits, loss


def _grad_norm(params: list[torch.Tensor], grad_clip: float | None) -> torch.Tensor:
    """The global L2 norm of the gradients (before clipping), on the device: no host sync."""
    if grad_clip:
        return torch.nn.utils.clip_grad_norm_(params, grad_clip)
    grads = [p.grad for p in params if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.nn.utils.clip_grad_norm_(params, float("inf"))  # multiplies by 1: the same norm


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
    grad_norm: bool = True,
    time_first_step: bool = False,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float | None]:
    """Train ``model`` for one pass over ``loader``.

    ``epoch`` is the 0-based position of the epoch (messages and the progress bar show ``epoch + 1``);
    ``scheduler.step_update(epoch * len(loader) + step + 1)`` runs after every optimiser step.
    Returns ``loss`` (mean), ``acc`` (top-1 against the un-mixed labels), ``seconds``,
    ``images_per_second`` (all processes), ``lr`` (the head lr of the last step) and ``grad_norm`` /
    ``grad_norm_max`` (mean and max over steps of the global gradient norm before clipping; ``None``
    when neither ``grad_norm`` nor ``grad_clip`` asks for it). ``time_first_step``: the first step
    (where ``torch.compile`` compiles) is timed on its own as ``first_step_seconds`` (one device
    sync) and ``images_per_second`` counts the steps after it only. ``after_step()`` runs after every
    optimiser step (e.g. a model EMA's update).
    Nothing in a step waits for the device: losses are checked for NaN/inf every ``CHECK_EVERY``
    steps (one sync each), raising :class:`NonFiniteLossError` with the epoch and step of the first.
    A compiled model whose first step fails falls back to eager (:func:`accel.guard_first_step`).
    """
    _set_train_mode(model)
    steps = len(loader)  # type: ignore[arg-type]
    params = [p for p in model.parameters() if p.requires_grad]
    measure = bool(grad_norm or grad_clip)
    # running sums stay on the device (0-d tensors added to in place: no host sync)
    loss_sum, correct, norm_sum, norm_max = (torch.zeros((), dtype=torch.float64, device=device) for _ in range(4))
    count, first_count, first_seconds, done = 0, 0, None, 0
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
        optimizer.zero_grad(set_to_none=True)
        logits, loss = guard_first_step(
            model, lambda: _forward_backward(model, images, targets, criterion, device, amp),
            before_retry=lambda: optimizer.zero_grad(set_to_none=True))
        if measure:
            norm = _grad_norm(params, grad_clip).double()
            norm_sum.add_(norm)
            torch.maximum(norm_max, norm, out=norm_max)
        lr = current_lr(optimizer)
        optimizer.step()
        if after_step is not None:
            after_step()
        if scheduler is not None:
            scheduler.step_update(num_updates=epoch * steps + step + 1)
        pending.append(loss.detach())
        loss_sum.add_(loss.detach().double(), alpha=labels.shape[0])
        correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        count, done = count + labels.shape[0], step + 1
        if time_first_step and step == 0:
            synchronize(device)
            first_seconds, first_count = time.perf_counter() - start, labels.shape[0]
        if len(pending) == CHECK_EVERY or step == steps - 1:
            last = _check_losses(pending, step + 1 - len(pending), steps, epoch, lr)
            bar.set_postfix(loss=f"{last:.3f}", lr=f"{lr:.2e}", refresh=False)
    totals = all_reduce_sum(torch.stack([loss_sum, correct, loss_sum.new_tensor(float(count)),
                                         loss_sum.new_tensor(float(first_count))]))
    values = torch.cat([totals, torch.stack([norm_sum, norm_max])]).tolist()  # the epoch's one closing sync
    seconds = time.perf_counter() - start
    images = max(values[2], 1.0)
    timed_images, timed_seconds = values[2] - values[3], seconds - (first_seconds or 0.0)
    if timed_images <= 0:  # one step only: nothing after the first to time on its own
        timed_images, timed_seconds = values[2], seconds
    out: dict[str, float | None] = {
        "loss": values[0] / images,
        "acc": values[1] / images,
        "seconds": seconds,
        "images_per_second": timed_images / max(timed_seconds, 1e-9),
        "lr": lr,
        "grad_norm": values[4] / max(done, 1) if measure else None,
        "grad_norm_max": values[5] if measure else None,
    }
    if time_first_step:
        out["first_step_seconds"] = first_seconds
    return out


def _pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """``images`` with zero rows appended up to ``size`` rows (a static shape for a compiled model)."""
    return torch.cat([images, images.new_zeros((size - images.shape[0], *images.shape[1:]))])


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
    pad_last: bool | None = None,
) -> EvalResult:
    """Predictions of ``model`` over the whole of ``loader`` (in loader order) as an :class:`EvalResult`.

    ``progress``: a tqdm bar over the batches (a full test split takes most of a minute on a CPU).
    ``pad_last`` (default: when ``model`` is compiled): a batch smaller than the first is padded with
    zero images to the first's size and the padding's outputs dropped, so a compiled model sees one
    static shape; exact, since every layer is per-sample in eval mode. Predictions stay on the
    device until the end (one transfer).
    """
    if class_names is None:
        if num_classes is None:
            raise ValueError("evaluate needs num_classes or class_names")
        class_names = [str(i) for i in range(num_classes)]
    k = min(5, len(class_names))
    pad_last = is_compiled(model) if pad_last is None else pad_last
    model.eval()
    labels_all, top_all, conf_all = [], [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    full = None
    total = len(loader) if hasattr(loader, "__len__") else None
    for images, labels in tqdm(loader, total=total, desc="eval", disable=not progress, leave=False,
                               dynamic_ncols=True):
        n = images.shape[0]
        full = n if full is None else full
        if pad_last and n < full:
            images = _pad_to(images, full)
        if channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits[:n].float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        probs, top = logits.softmax(dim=1).topk(k, dim=1)
        labels_all.append(labels)
        top_all.append(top)
        conf_all.append(probs[:, 0])
    labels_np = torch.cat(labels_all).cpu().numpy() if labels_all else np.zeros(0, dtype=np.int64)
    top_np = torch.cat(top_all).cpu().numpy() if top_all else np.zeros((0, k), dtype=np.int64)
    n = max(len(labels_np), 1)
    return EvalResult(
        labels=labels_np,
        predictions=top_np[:, 0].copy(),
        top5_predictions=top_np,
        confidence=torch.cat(conf_all).cpu().numpy() if conf_all else np.zeros(0, dtype=np.float32),
        loss=float(loss_sum.item() / n),
        class_names=list(class_names),
    )
