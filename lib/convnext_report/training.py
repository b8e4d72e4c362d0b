"""``train(config) -> Run``: the epoch loop of a run, with model selection, resume and failure handling.

Each epoch trains on the training images, evaluates the selection split (a held-out part of the
training split, or the test split itself with ``selection="test"``) and keeps the weights of the
best epoch; the reported (test) split is evaluated once at the end with those weights.
The parts come from :mod:`convnext_report.parts`, the files from :mod:`convnext_report.runfolder`;
one epoch of training and one evaluation pass are :mod:`convnext_report.engine`'s.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch import nn

from . import distributed as dist_utils
from .accel import configure_cuda, describe
from .config import TrainConfig
from .distributed import DistInfo
from .engine import NonFiniteLossError, evaluate, train_one_epoch
from .environment import environment_record, now_iso
from .evaluation import EvalResult
from .frozen import HeadOnly
from .interrupts import Terminated, sigterm_raises
from .models import dyt_alphas
from .models.pretrained import load_record
from .optim import set_implementation
from .parts import Parts, build_parts, seed_everything, wrap_model
from .runfolder import CHECKPOINT_BEST, CHECKPOINT_LAST, Resumed, Run, RunFolder, load_checkpoint, load_run, open_folder
from .selection import Selection

__all__ = ["checkpoint", "restore", "rng_state", "set_rng_state", "train"]

_log = logging.getLogger("convnext_report.run")


def train(config: TrainConfig, *, on_epoch_end: Callable[[dict[str, float]], None] | None = None) -> Run:
    """Train, select the best epoch on the selection split, evaluate the test split once with its
    weights, and write the run folder.

    ``on_epoch_end(row)`` is called after each epoch's files are written (e.g. live plots; raising
    from it stops the run like a kill, and ``resume=True`` continues it). ``resume=True`` on a
    finished run loads it; on a missing folder it starts a new run (so notebooks can always pass it).
    """
    info = dist_utils.init_distributed(config.device)
    folder = None
    started = False
    try:
        with sigterm_raises():
            folder, config, resumed = open_folder(config, info)
            if resumed.finished:
                return load_run(folder.path)
            session = _Session(config, folder, info, resumed, on_epoch_end)
            session.setup()
            started = True
            return session.loop()
    finally:
        if folder is not None:
            folder.release(remove_if_new=not started)
        dist_utils.cleanup(info)


class _Session:
    """State of one ``train`` call: :meth:`setup` builds the parts, :meth:`loop` runs the epochs."""

    def __init__(self, config: TrainConfig, folder: RunFolder, info: DistInfo, resumed: Resumed,
                 on_epoch_end: Callable[[dict[str, float]], None] | None) -> None:
        self.config, self.folder, self.info, self.on_epoch_end = config, folder, info, on_epoch_end
        self.resumed, self.ckpt = resumed, resumed.checkpoint
        self.t0 = time.perf_counter()
        # a resumed run keeps the start time of its first session and counts its sessions
        self.start_time = resumed.record.get("start_time") or now_iso()
        self.sessions = (resumed.record.get("sessions") or 0) + 1
        self.selection = Selection()
        self.elapsed_before = 0.0

    def setup(self) -> None:
        c, info = self.config, self.info
        cuda_settings = configure_cuda(info.device)
        self.parts = p = build_parts(c, info)
        self.ema = ModelEmaV3(p.model, decay=c.model_ema_decay) if c.model_ema else None
        start = 1
        if self.ckpt is not None:
            start, self.elapsed_before = restore(self.ckpt, p, self.selection, self.ema, config=c, info=info)
        self.train_model, self.eval_model = wrap_model(p.model, fast_path=p.fast_path, info=info, compile=c.compile)
        self.folder.create(c, new=self.resumed.new)
        if self.ckpt is None:
            self.folder.write_alphas(0, dyt_alphas(p.model))
        self.record = _new_record(c, p, info, self.folder, self.start_time, self.sessions)
        self.record.update(cuda_settings=cuda_settings, compiled=describe(self.train_model))
        images = (f"{p.num_train_images} train / {p.num_selection_images} held-out / {p.num_test_images} test images"
                  if c.selection == "holdout" else
                  f"{p.num_train_images} train / {p.num_test_images} test images (the test split selects the epoch)")
        _log.info("run folder %s | %s on %s: %s, %d classes, %d steps/epoch | "
                  "%s (%s) x%d | %.2fM params (%.2fM trainable) | data %.1fs (%s)%s",
                  self.folder.path, c.model, c.dataset, images, p.num_classes,
                  len(p.train_loader), self.record["device_name"], info.device, info.world_size,
                  self.record["params_total"] / 1e6, self.record["params_trainable"] / 1e6, p.data_seconds,
                  "from cache" if p.data_from_cache else "decoded",
                  " | frozen backbone: features cached once" if p.fast_path else "")
        loaded = self.record["pretrained_load"]
        if loaded is not None:
            _log.info("pretrained %s: %d tensors loaded; left at their initialisation: %s; resampled: %s%s",
                      loaded["source"], loaded["loaded"], ", ".join(loaded["reinitialised"]) or "none",
                      "; ".join(loaded["resampled"]) or "none", "".join(f"; {n}" for n in loaded["notes"]))
        if self.ckpt is not None:
            best = self.selection.best
            _log.info("resuming after epoch %d/%d (best so far: epoch %d, selection top-1 %.4f)", start - 1, c.epochs,
                      best["epoch"], best["selection_acc"])
        self.start_epoch = start

    def loop(self) -> Run:
        c, epoch = self.config, self.start_epoch
        self._write_record()
        try:
            # checked first too: a run killed after its early-stopping epoch resumes straight into finishing
            while not self.selection.should_stop(c.early_stopping_patience) and epoch <= c.epochs:
                self._epoch(epoch)
                epoch += 1
            stop_reason = "epochs"
            if self.selection.should_stop(c.early_stopping_patience):
                stop_reason = "early_stopping"
                _log.info("early stopping: no selection top-1 improvement for %d epochs (best epoch %d/%d)",
                          c.early_stopping_patience, self.selection.best["epoch"], c.epochs)
            return self._finish(stop_reason)
        except NonFiniteLossError as err:
            last = self.selection.history[-1]["epoch"] if self.selection.history else None
            kept = (f"{self.folder.path / CHECKPOINT_LAST} (epoch {last}, the last good epoch) was kept"
                    if last is not None else "no epoch had finished, so there is no checkpoint")
            self._fail("non_finite_loss", f"{err}; {kept}")
            raise NonFiniteLossError(f"{err}. The run stopped; {kept}.") from None
        except BaseException as err:
            reason = "terminated" if isinstance(err, Terminated) else \
                "error" if isinstance(err, Exception) else "interrupted"
            self._fail(reason, f"{type(err).__name__}: {err}")
            raise

    def _epoch(self, epoch: int) -> None:
        """Train epoch ``epoch`` (1-based), evaluate, keep the best weights, write the epoch's files."""
        c, p = self.config, self.parts
        index = epoch - 1  # the 0-based position that seeds the epoch's order and places the schedule
        p.train_loader.set_epoch(index)
        t_epoch, first = time.perf_counter(), epoch == self.start_epoch
        stats = train_one_epoch(
            self.train_model, p.train_loader, p.optimizer, p.scheduler, criterion=p.criterion,
            device=self.info.device, amp=c.amp, mixup_fn=p.mixup, grad_clip=c.grad_clip, epoch=index,
            progress=c.progress and self.info.is_main, channels_last=p.channels_last and not p.fast_path,
            time_first_step=first, after_step=(lambda: self.ema.update(p.model)) if self.ema else None)
        if first:  # the first step of a session compiles (on CUDA): its time is kept apart from images/s
            self.record.update(first_step_seconds=stats.get("first_step_seconds"), compiled=describe(self.train_model))
        selected = self._evaluate(p.selection_loader)
        test = selected if p.test_loader is p.selection_loader else (
            self._evaluate(p.test_loader) if c.test_every_epoch else None)
        ema_selected = self._evaluate(p.selection_loader, self._ema_model()) if self.ema else None
        row = {"epoch": epoch, "train_loss": stats["loss"], "train_acc": stats["acc"],
               "selection_loss": selected.loss, "selection_acc": selected.top1, "selection_top5": selected.top5,
               "test_loss": test.loss if test else math.nan, "test_acc": test.top1 if test else math.nan,
               "ema_selection_acc": ema_selected.top1 if ema_selected else math.nan,
               "lr": stats["lr"], "grad_norm": _nan_if_none(stats.get("grad_norm")),
               "grad_norm_max": _nan_if_none(stats.get("grad_norm_max")), "seconds": time.perf_counter() - t_epoch,
               "images_per_second": stats["images_per_second"]}
        improved = self.selection.add(row, selected, test)
        state = checkpoint(p, self.selection, self.ema, epoch=epoch, config=c, device=self.info.device,
                           elapsed=self.elapsed_before + time.perf_counter() - self.t0)
        self.folder.write_alphas(epoch, dyt_alphas(p.model))  # before the checkpoint: a resume trims it to it
        self.folder.save_epoch(state, self.selection.history, improved)
        self._write_record()
        _log.info("epoch %d/%d  train loss %.4f acc %.4f | selection loss %.4f acc %.4f top5 %.4f | lr %.2e | "
                  "%.1fs, %.0f img/s%s", epoch, c.epochs, row["train_loss"], row["train_acc"],
                  row["selection_loss"], row["selection_acc"], row["selection_top5"], row["lr"], row["seconds"],
                  row["images_per_second"], "  *best*" if improved else "")
        if self.on_epoch_end is not None:
            self.on_epoch_end(dict(row))

    def _evaluate(self, loader: Any, model: nn.Module | None = None) -> EvalResult:
        p = self.parts
        return evaluate(model or self.eval_model, loader, device=self.info.device, amp=self.config.amp,
                        class_names=p.class_names, channels_last=p.channels_last and not p.fast_path,
                        progress=self.config.progress and self.info.is_main)

    def _ema_model(self) -> nn.Module:
        """The EMA's weights as the evaluation sees them (head only on cached features)."""
        return HeadOnly(self.ema.module) if self.parts.fast_path else self.ema.module

    def _finish(self, stop_reason: str) -> Run:
        """Evaluate the test split with the best epoch's weights (once), write eval and record."""
        dist_utils.barrier()
        sel = self.selection
        result = sel.best_test
        if result is None:
            best = load_checkpoint(self.folder.path / CHECKPOINT_BEST, map_location=self.info.device)
            if best["epoch"] != sel.best["epoch"]:
                raise RuntimeError(f"{self.folder.path / CHECKPOINT_BEST} holds epoch {best['epoch']}, not the best "
                                   f"epoch {sel.best['epoch']}: the folder was changed by hand; train the run again")
            self.parts.model.load_state_dict(best["model"])
            result = self._evaluate(self.parts.test_loader)
        rows = self.parts.test_rows
        result.split_rows = rows.numpy() if rows is not None else None
        _log.info("best epoch %d/%d (by %s): test top1 %.4f top5 %.4f (evaluated once, with its weights)",
                  sel.best["epoch"], self.config.epochs, self.config.selection, result.top1, result.top5)
        self.record.update(status="finished", stop_reason=stop_reason, final_top1=result.top1,
                           final_top5=result.top5, final_loss=result.loss,
                           peeked_top1=sel.peeked_top1(),
                           ema_final_top1=self._evaluate(self.parts.test_loader, self._ema_model()).top1
                           if self.ema else None)
        self.folder.save_eval(result)
        self._write_record(end=True)
        if self.info.is_main:
            _log.info("finished (%s): %s", stop_reason, self.folder.path)
        dist_utils.barrier()
        # the evaluation is read back from eval.npz on first use: a Run is what its folder holds (compact arrays)
        return Run(path=self.folder.path, config=self.config, history=list(sel.history), record=dict(self.record),
                   best=dict(sel.best))

    def _fail(self, reason: str, message: str) -> None:
        self.record.update(status="failed", stop_reason=reason, error=message)
        _log.error("run stopped (%s): %s", reason, message)
        self._write_record(end=True)

    def _write_record(self, end: bool = False) -> None:
        wall = self.elapsed_before + time.perf_counter() - self.t0
        best = self.selection.best
        self.record.update(wall_time_seconds=wall, best_epoch=best["epoch"], best_selection_top1=best["selection_acc"],
                           best_selection_top5=best["selection_top5"], best_selection_loss=best["selection_loss"],
                           epochs_run=len(self.selection.history))
        if end:
            self.record["end_time"] = now_iso()
        self.folder.write_record(self.record)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _new_record(config: TrainConfig, parts: Parts, info: DistInfo, folder: RunFolder, start_time: str,
                sessions: int) -> dict[str, Any]:
    """The record of a run that is starting (or resuming): what it is, where it runs, its data."""
    c, p = config, parts
    return {
        "run_name": folder.path.name, "status": "running", "stop_reason": None, "error": None,
        "start_time": start_time, "end_time": None, "wall_time_seconds": None, "sessions": sessions,
        "seed": c.seed, "dataset": c.dataset, "model": c.model, "selection": c.selection,
        "num_classes": p.num_classes, "class_names": p.class_names, "num_train_images": p.num_train_images,
        "num_selection_images": p.num_selection_images, "num_test_images": p.num_test_images,
        "steps_per_epoch": len(p.train_loader), "batch_size": c.batch_size,
        "params_total": sum(x.numel() for x in p.model.parameters()),
        "params_trainable": sum(x.numel() for x in p.model.parameters() if x.requires_grad),
        "frozen_feature_fast_path": p.fast_path, "data_seconds": round(p.data_seconds, 3),
        "data_from_cache": p.data_from_cache,
        **environment_record(info.device, world_size=info.world_size), "extra": c.extra,
        "pretrained_load": load_record(p.model.pretrained_report) if p.model.pretrained_report else None,
    }


def checkpoint(parts: Parts, selection: Selection, ema: Any | None, *, epoch: int, config: TrainConfig,
               device: torch.device, elapsed: float) -> dict[str, Any]:
    """Everything a resumed run needs after epoch ``epoch`` (1-based: the number of the last finished epoch):
    model, optimiser, schedule and EMA states, the selection so far, the generators' states, the time spent.
    With the same seed and data a resumed run repeats the uninterrupted one."""
    return {
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "epoch": epoch, **selection.state_dict(),
        "rng": rng_state(device), "elapsed": elapsed, "num_classes": parts.num_classes,
        "config": config.to_dict(), **({"model_ema": ema.module.state_dict()} if ema is not None else {}),
    }


def restore(ckpt: dict[str, Any], parts: Parts, selection: Selection, ema: nn.Module | None, *,
            config: TrainConfig, info: DistInfo) -> tuple[int, float]:
    """Load ``ckpt`` into the parts, selection and EMA: (epoch to continue at, 1-based; seconds spent)."""
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
    return int(ckpt["epoch"]) + 1, float(ckpt["elapsed"])


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
