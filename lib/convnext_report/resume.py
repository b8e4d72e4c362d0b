"""What a checkpoint holds, and how a run continues from one exactly where it stopped.

A checkpoint has the model, optimiser, schedule and (optional) model EMA states, the model
selection so far (history, best epoch, patience), the generators' states, the time spent and the
number of sessions; with the same seed and data a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .distributed import DistInfo
from .optim import set_implementation
from .parts import Parts, seed_everything
from .selection import Selection

__all__ = ["checkpoint", "restore", "rng_state", "set_rng_state"]


def checkpoint(parts: Parts, selection: Selection, ema: Any | None, *, epoch: int, config: TrainConfig,
               device: torch.device, elapsed: float, sessions: int) -> dict[str, Any]:
    """Everything a resumed run needs after epoch ``epoch`` (1-based: the number of the last finished epoch)."""
    return {
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "epoch": epoch, **selection.state_dict(),
        "rng": rng_state(device), "elapsed": elapsed, "sessions": sessions, "num_classes": parts.num_classes,
        "config": config.to_dict(), **({"model_ema": ema.module.state_dict()} if ema is not None else {}),
    }


def restore(ckpt: dict[str, Any], parts: Parts, selection: Selection, ema: nn.Module | None, *,
            config: TrainConfig, info: DistInfo) -> tuple[int, float, int]:
    """Load ``ckpt`` into the parts, selection and EMA: (epoch to continue at, 1-based; seconds spent; sessions)."""
    parts.model.load_state_dict(ckpt["model"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    set_implementation(parts.optimizer, info.device)  # fused/foreach for this device, not the saved one
    parts.scheduler.load_state_dict(ckpt["scheduler"])
    if ema is not None:
        ema.module.load_state_dict(ckpt["model_ema"])
    selection.load_state_dict(ckpt)
    if info.is_main:
        set_rng_state(ckpt["rng"], info.device)
    else:
        seed_everything(config.seed + info.rank + 7919 * ckpt["epoch"])
    return int(ckpt["epoch"]) + 1, float(ckpt["elapsed"]), int(ckpt["sessions"]) + 1


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy, torch and (on CUDA) this device's generator states, as plain types and tensors.

    Only the run's own CUDA device: a checkpoint written on a machine with more GPUs resumes on one
    with fewer."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (the CUDA state onto ``device``, when both are CUDA)."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, (list, tuple)) else cuda, device)
