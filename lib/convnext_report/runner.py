"""A whole training run and its run folder: ``train(config) -> Run`` and ``load_run(path) -> Run``.

Run folder ``<out_dir>/<run_name>/`` (every file written atomically, only by rank 0)::

    config.yaml          the resolved TrainConfig
    log.txt              the log lines also printed to stdout
    history.csv          one row per epoch (HISTORY_COLUMNS)
    record.json          environment, data sizes, timing, best epoch, status and stop reason
    checkpoint_last.pt   model/optimizer/scheduler/RNG/history after the latest epoch
    checkpoint_best.pt   the same, at the epoch of best validation top-1
    eval.json, eval.npz  final evaluation of the best weights (see evaluation.EvalResult)

An existing folder is never overwritten: ``resume=True`` continues it from
``checkpoint_last.pt`` (the saved ``config.yaml`` wins over the passed config except for the
runtime keys in RUNTIME_KEYS); a finished run is simply loaded again, and a missing folder
starts a new run (so notebooks can always pass ``resume=True``).
"""

from __future__ import annotations

import logging
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import distributed as dist_utils
from .config import TrainConfig, load_config, save_config
from .engine import NonFiniteLossError, evaluate, train_one_epoch
from .evaluation import EVAL_JSON, EvalResult
from .optim import build_optimizer, build_scheduler
from .records import atomic_write, environment_record, now_iso, torch_save_atomic, write_json_atomic, write_text_atomic

HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds", "images_per_second",
)
#: config keys a resumed run takes from the passed config instead of the saved one
RUNTIME_KEYS = ("resume", "progress", "device", "compile", "data_dir", "out_dir", "run_name")
CHECKPOINT_LAST, CHECKPOINT_BEST = "checkpoint_last.pt", "checkpoint_best.pt"
FAST_PATH_MAX_BYTES = 4 * 2**30  #: largest feature cache the frozen-backbone fast path may hold

_log = logging.getLogger("convnext_report.runner")


@dataclass
class Run:
    """A run folder in memory. ``history`` is a list of per-epoch dicts (``history_df`` as a DataFrame);
    accuracies are fractions in [0, 1]; ``best`` holds epoch, val_acc, val_top5 and val_loss of the best epoch.
    Epochs are 0-based indices in every file and field (as in facebookresearch/ConvNeXt); log lines say
    ``epoch k/E`` counting from 1."""

    path: Path
    config: TrainConfig
    history: list[dict[str, float]]
    record: dict[str, Any]
    best: dict[str, Any]
    _eval: EvalResult | None = field(default=None, repr=False)

    @property
    def eval(self) -> EvalResult:
        """Final evaluation of the best weights, read from eval.json/eval.npz on first use."""
        if self._eval is None:
            if not (self.path / EVAL_JSON).is_file():
                raise FileNotFoundError(f"{self.path} has no {EVAL_JSON}: the run did not finish (resume it)")
            self._eval = EvalResult.load(self.path)
        return self._eval

    @property
    def history_df(self) -> pd.DataFrame:
        return pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))

    def load_model(self, which: str = "best", device: str | torch.device = "cpu") -> nn.Module:
        """The model with the weights of ``checkpoint_<which>.pt`` ("best" or "last"), in eval mode."""
        from .models import build_model_from_config

        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        ckpt = _load_checkpoint(self.path / f"checkpoint_{which}.pt")
        model = build_model_from_config(self.config.replace(pretrained=None), ckpt["num_classes"])
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()

    def val_data(self) -> Any:
        """The validation ImageTensors this run was evaluated on (row i = ``eval.indices`` i)."""
        return _load_split(self.config, "val")


def load_run(path: str | Path) -> Run:
    """Read a run folder written by :func:`train`."""
    path = Path(path)
    for name in ("config.yaml", "record.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a run folder: {name} is missing")
    history_file = path / "history.csv"
    history = pd.read_csv(history_file).to_dict("records") if history_file.is_file() else []
    record = _read_json(path / "record.json")
    return Run(path=path, config=load_config(path / "config.yaml"), history=history, record=record,
               best=_best_from_record(record))


def train(config: TrainConfig, *, on_epoch_end: Callable[[dict[str, float]], None] | None = None) -> Run:
    """Train, validate each epoch, keep the best weights, evaluate them, and write the run folder.

    ``on_epoch_end(row)`` is called after each epoch's files are written (e.g. live plots; raising
    from it stops the run like a kill, and ``resume=True`` continues it).
    """
    info = dist_utils.init_distributed(config.device)
    session = None
    try:
        path, config, ckpt, finished = _open_folder(config, info)
        if finished:
            return load_run(path)  # resume=True on a finished run: nothing left to do
        session = _Session(config, path, info, ckpt, on_epoch_end)
        return session.run()
    finally:
        if session is not None:
            session.close()
        dist_utils.cleanup(info)


# --------------------------------------------------------------------------- the session


class _Session:
    """State of one ``train`` call; ``run()`` is the epoch loop."""

    def __init__(self, config: TrainConfig, path: Path, info: dist_utils.DistInfo, ckpt: dict | None,
                 on_epoch_end: Callable[[dict[str, float]], None] | None) -> None:
        self.config, self.path, self.info, self.ckpt, self.on_epoch_end = config, path, info, ckpt, on_epoch_end
        self.device = info.device
        self.t0 = time.perf_counter()
        # a resumed run keeps the start time of its first session
        self.start_time = _read_json(path / "record.json").get("start_time") if ckpt else None
        self.start_time = self.start_time or now_iso()
        self.log_handlers: list[logging.Handler] = []

    def close(self) -> None:
        """Detach the log file and stdout handlers of this run."""
        for h in self.log_handlers:
            _log.removeHandler(h)
            h.close()

    # ---- setup
    def run(self) -> Run:
        c, info = self.config, self.info
        _seed_everything(c.seed)
        t_data = time.perf_counter()
        train_data, val_data = _load_split(c, "train"), _load_split(c, "val")
        self.data_seconds = time.perf_counter() - t_data
        self.data_from_cache = bool(train_data.from_cache and val_data.from_cache)
        # channels_last helps CUDA convolutions; on CPU it is 10-20% slower, so it is CUDA-only
        self.channels_last = c.channels_last and self.device.type == "cuda"
        self.class_names = list(train_data.class_names)
        self.val_rows = val_data.rows
        self.num_classes = len(self.class_names)
        from .models import build_model_from_config

        model = build_model_from_config(c, self.num_classes).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        _seed_everything(c.seed + info.rank)  # different augmentation per process, same init everywhere
        self.train_loader, self.val_loader, self.fast_path = self._loaders(train_data, val_data)
        steps = len(self.train_loader)
        if steps == 0:
            raise ValueError(f"{len(train_data.labels)} training images give no full batch of {c.batch_size}: "
                             "lower batch_size")
        self.optimizer = build_optimizer(model, c)
        self.scheduler = build_scheduler(self.optimizer, c, steps)
        self.mixup = _build_mixup(c, self.num_classes)
        self.criterion = build_criterion(c, mixup=self.mixup is not None)
        self.history: list[dict[str, float]] = []
        self.best_result: EvalResult | None = None  # evaluation of the best epoch, if it ran in this session
        self.best: dict[str, Any] = {"epoch": -1, "val_acc": -1.0, "val_top5": None, "val_loss": None}
        self.since_best, self.elapsed_before, self.sessions, start_epoch = 0, 0.0, 1, 0
        if self.ckpt is not None:
            start_epoch = self._restore(self.ckpt)
        self.train_model, self.eval_model = self._wrap(model)
        self._create_folder()  # only now: a config or data error leaves no folder behind
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.record = {
            "run_name": self.path.name, "status": "running", "stop_reason": None, "error": None,
            "start_time": self.start_time, "end_time": None, "wall_time_seconds": None, "sessions": self.sessions,
            "seed": c.seed, "dataset": c.dataset, "model": c.model, "num_classes": self.num_classes,
            "class_names": self.class_names,
            "num_train_images": len(train_data.labels), "num_val_images": len(val_data.labels),
            "steps_per_epoch": steps, "batch_size": c.batch_size,
            "params_total": sum(p.numel() for p in model.parameters()), "params_trainable": trainable,
            "frozen_feature_fast_path": self.fast_path,
            "data_seconds": round(self.data_seconds, 3), "data_from_cache": self.data_from_cache,
            **environment_record(self.device, world_size=info.world_size), "extra": c.extra,
        }
        _log.info("run folder %s | %s on %s: %d train / %d val images, %d classes, %d steps/epoch | "
                  "%s (%s) x%d | %.2fM params (%.2fM trainable) | data %.1fs (%s)%s",
                  self.path, c.model, c.dataset, len(train_data.labels), len(val_data.labels), self.num_classes,
                  steps, self.record["device_name"], self.device, info.world_size,
                  self.record["params_total"] / 1e6, trainable / 1e6,
                  self.data_seconds, "from cache" if self.data_from_cache else "decoded",
                  " | frozen backbone: features cached once" if self.fast_path else "")
        if start_epoch:
            _log.info("resuming at epoch %d/%d (best so far: epoch %d/%d, val_acc %.4f)", start_epoch + 1, c.epochs,
                      self.best["epoch"] + 1, c.epochs, self.best["val_acc"])
        return self._loop(start_epoch)

    def _loaders(self, train_data: Any, val_data: Any) -> tuple[Any, Any, bool]:
        from .data import DeviceLoader, get_dataset_spec, make_eval_transform, make_train_transform

        c, info, dev = self.config, self.info, self.device
        spec = get_dataset_spec(c.dataset)
        eval_tf = make_eval_transform(spec.mean, spec.std, c.image_size)
        val = DeviceLoader(val_data, c.batch_size, transform=eval_tf, shuffle=False, drop_last=False, device=dev)
        if _fast_path_allowed(c):
            cached = self._cache_features(train_data, val_data, val, eval_tf)
            if cached is not None:
                return (*cached, True)
        train_tf = make_train_transform(spec, c.image_size, crop_padding=c.crop_padding, hflip=c.hflip,
                                        randaugment=c.randaugment)
        mixing = c.mixup > 0 or c.cutmix > 0
        train = DeviceLoader(train_data, c.batch_size, transform=train_tf, shuffle=True, drop_last=mixing,
                             device=dev, seed=c.seed, rank=info.rank, world_size=info.world_size,
                             max_steps=c.max_steps_per_epoch)
        return train, val, False

    def _cache_features(self, train_data: Any, val_data: Any, val_loader: Any,
                        eval_tf: nn.Module) -> tuple[Any, Any] | None:
        """Loaders over backbone features computed once, or None when they would not fit."""
        from .data import DeviceLoader
        from .frozen import TensorLoader, extract_features, pools_first

        c, dev = self.config, self.device
        pool = pools_first(self.model)
        with torch.no_grad():
            shape = self.model.eval().forward_features(next(iter(val_loader))[0][:1]).shape
        per_image = 4 * (shape[1] if pool else int(np.prod(shape[1:])))
        if per_image * (len(train_data.labels) + len(val_data.labels)) > FAST_PATH_MAX_BYTES:
            _log.info("frozen backbone: features too large to cache, training through the backbone")
            return None
        plain = DeviceLoader(train_data, c.batch_size, transform=eval_tf, shuffle=False, drop_last=False, device=dev)
        kw = dict(device=dev, amp=c.amp, channels_last=self.channels_last, pool=pool)
        tf, tl = extract_features(self.model, plain, **kw)
        vf, vl = extract_features(self.model, val_loader, **kw)
        train = TensorLoader(tf, tl, c.batch_size, shuffle=True, drop_last=False, seed=c.seed,
                             rank=self.info.rank, world_size=self.info.world_size, max_steps=c.max_steps_per_epoch)
        return train, TensorLoader(vf, vl, c.batch_size, shuffle=False, drop_last=False)

    def _wrap(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(model to train, model to evaluate): head-only for cached features, DDP, torch.compile."""
        if self.fast_path:
            from .frozen import HeadOnly

            model = HeadOnly(model)
        train_model, eval_model = model, model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.config.compile:
            train_model, eval_model = torch.compile(train_model), torch.compile(eval_model)
        return train_model, eval_model

    def _create_folder(self) -> None:
        """Rank 0: make the folder, write config.yaml (new runs), log to log.txt and stdout."""
        if self.info.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.ckpt is None:
                atomic_write(self.path / "config.yaml", lambda p: save_config(self.config.replace(resume=False), p))
            self.log_handlers = _attach_log(self.path / "log.txt")
        dist_utils.barrier()

    # ---- loop
    def _loop(self, start_epoch: int) -> Run:
        c, main = self.config, self.info.is_main
        self._write_record()
        stop_reason = "epochs"
        try:
            for epoch in range(start_epoch, c.epochs):
                if hasattr(self.train_loader, "set_epoch"):
                    self.train_loader.set_epoch(epoch)
                t_epoch = time.perf_counter()
                stats = train_one_epoch(
                    self.train_model, self.train_loader, self.optimizer, self.scheduler, criterion=self.criterion,
                    device=self.device, amp=c.amp, mixup_fn=self.mixup, grad_clip=c.grad_clip, epoch=epoch,
                    progress=c.progress and main, channels_last=self.channels_last and not self.fast_path)
                result = self._evaluate()
                row = {"epoch": epoch, "train_loss": stats["loss"], "train_acc": stats["acc"],
                       "val_loss": result.loss, "val_acc": result.top1, "val_top5": result.top5, "lr": stats["lr"],
                       "seconds": time.perf_counter() - t_epoch, "images_per_second": stats["images_per_second"]}
                self.history.append(row)
                improved = result.top1 > self.best["val_acc"]
                if improved:
                    self.best = {"epoch": epoch, "val_acc": result.top1, "val_top5": result.top5,
                                 "val_loss": result.loss}
                    self.best_result = result
                self.since_best = 0 if improved else self.since_best + 1
                self._save_epoch(epoch, improved)
                _log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f top5 %.4f | lr %.2e | "
                          "%.1fs, %.0f img/s%s", epoch + 1, c.epochs, row["train_loss"], row["train_acc"],
                          row["val_loss"], row["val_acc"], row["val_top5"], row["lr"], row["seconds"],
                          row["images_per_second"], "  *best*" if improved else "")
                if self.on_epoch_end is not None:
                    self.on_epoch_end(dict(row))
                patience = c.early_stopping_patience
                if patience is not None and self.since_best >= patience:
                    stop_reason = "early_stopping"
                    _log.info("early stopping: no val_acc improvement for %d epochs (best epoch %d/%d)",
                              patience, self.best["epoch"] + 1, c.epochs)
                    break
        except NonFiniteLossError as err:
            last = self.history[-1]["epoch"] if self.history else None
            kept = (f"{self.path / CHECKPOINT_LAST} (epoch {last} (0-based), the last good epoch) was kept"
                    if last is not None else "no epoch had finished, so there is no checkpoint")
            self._fail("non_finite_loss", f"{err}; {kept}")
            raise NonFiniteLossError(f"{err}. The run stopped; {kept}.") from None
        except BaseException as err:
            self._fail("error" if isinstance(err, Exception) else "interrupted", f"{type(err).__name__}: {err}")
            raise
        return self._finish(stop_reason)

    def _evaluate(self) -> EvalResult:
        c = self.config
        return evaluate(self.eval_model, self.val_loader, device=self.device, amp=c.amp, class_names=self.class_names,
                        channels_last=self.channels_last and not self.fast_path, progress=False)

    def _finish(self, stop_reason: str) -> Run:
        dist_utils.barrier()
        result = self.best_result
        if result is None:  # the best epoch ran in an earlier session: restore its weights and evaluate
            best = _load_checkpoint(self.path / CHECKPOINT_BEST, map_location=self.device)
            self.model.load_state_dict(best["model"])
            result = self._evaluate()
        result.split_rows = self.val_rows.numpy() if self.val_rows is not None else None
        _log.info("best epoch %d/%d: val top1 %.4f top5 %.4f (the final evaluation)",
                  self.best["epoch"] + 1, self.config.epochs, result.top1, result.top5)
        self.record.update(status="finished", stop_reason=stop_reason, epochs_run=len(self.history),
                           best_epoch=self.best["epoch"], best_val_top1=self.best["val_acc"],
                           best_val_top5=self.best["val_top5"], best_val_loss=self.best["val_loss"],
                           final_top1=result.top1, final_top5=result.top5, final_loss=result.loss)
        if self.info.is_main:
            result.save(self.path)
            self._write_record(end=True)
            _log.info("finished (%s): %s", stop_reason, self.path)
        dist_utils.barrier()
        return Run(path=self.path, config=self.config, history=list(self.history), record=dict(self.record),
                   best=dict(self.best), _eval=result)

    def _fail(self, reason: str, message: str) -> None:
        self.record.update(status="failed", stop_reason=reason, error=message, epochs_run=len(self.history))
        _log.error("run stopped (%s): %s", reason, message)
        if self.info.is_main:
            self._write_record(end=True)

    # ---- files
    def _write_record(self, end: bool = False) -> None:
        if not self.info.is_main:
            return
        wall = self.elapsed_before + time.perf_counter() - self.t0
        self.record.update(wall_time_seconds=wall, best_epoch=self.best["epoch"],
                           best_val_top1=self.best["val_acc"] if self.best["epoch"] >= 0 else None,
                           best_val_top5=self.best["val_top5"], epochs_run=len(self.history))
        if end:
            self.record["end_time"] = now_iso()
        write_json_atomic(self.path / "record.json", self.record)

    def _save_epoch(self, epoch: int, improved: bool) -> None:
        """Checkpoint(s), history.csv and record.json after epoch ``epoch`` (0-based)."""
        if self.info.is_main:
            state = {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": epoch, "best": self.best,
                "since_best": self.since_best, "history": self.history, "rng": _rng_state(),
                "elapsed": self.elapsed_before + time.perf_counter() - self.t0, "sessions": self.sessions,
                "num_classes": self.num_classes, "config": self.config.to_dict(),
            }
            torch_save_atomic(state, self.path / CHECKPOINT_LAST)
            if improved:
                tmp = self.path / (CHECKPOINT_BEST + ".tmp")
                shutil.copyfile(self.path / CHECKPOINT_LAST, tmp)
                tmp.replace(self.path / CHECKPOINT_BEST)
            write_text_atomic(self.path / "history.csv", self._history_csv())
            self._write_record()
        dist_utils.barrier()

    def _history_csv(self) -> str:
        return pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS)).to_csv(index=False)

    def _restore(self, ckpt: dict) -> int:
        """Load a checkpoint into model/optimizer/scheduler; the (0-based) epoch to continue at."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history, self.best, self.since_best = list(ckpt["history"]), dict(ckpt["best"]), ckpt["since_best"]
        self.elapsed_before, self.sessions = float(ckpt["elapsed"]), int(ckpt["sessions"]) + 1
        if self.info.is_main:
            _set_rng_state(ckpt["rng"])
        else:
            _seed_everything(self.config.seed + self.info.rank + 7919 * (ckpt["epoch"] + 1))
        return int(ckpt["epoch"]) + 1


# --------------------------------------------------------------------------- helpers


def build_criterion(config: TrainConfig, *, mixup: bool) -> nn.Module:
    """Soft-target cross-entropy under Mixup/CutMix (which then applies label smoothing), else
    cross-entropy with ``label_smoothing``."""
    from timm.loss import SoftTargetCrossEntropy

    return SoftTargetCrossEntropy() if mixup else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def _build_mixup(config: TrainConfig, num_classes: int) -> Any | None:
    """timm's Mixup/CutMix when either alpha is > 0 (needs an even batch size)."""
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    if config.batch_size % 2:
        raise ValueError(f"mixup/cutmix need an even batch_size, got {config.batch_size}")
    from timm.data import Mixup

    return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.label_smoothing,
                 num_classes=num_classes)


def _fast_path_allowed(config: TrainConfig) -> bool:
    """Frozen backbone and nothing random before the head: features can be computed once."""
    return (config.freeze_backbone and not config.randaugment and config.crop_padding == 0 and not config.hflip
            and config.mixup <= 0 and config.cutmix <= 0)


def _load_split(config: TrainConfig, split: str) -> Any:
    """The train or val ImageTensors the config selects (train: train_per_class, val: val_per_class)."""
    from .data import load_split

    per_class = config.train_per_class if split == "train" else config.val_per_class
    return load_split(config.dataset, split, data_dir=config.data_dir, per_class=per_class,
                      max_classes=config.max_classes, seed=config.seed)


def _open_folder(config: TrainConfig, info: dist_utils.DistInfo) -> tuple[Path, TrainConfig, dict | None, bool]:
    """(path, effective config, checkpoint to resume or None, run already finished); writes nothing."""
    if config.resume and not config.run_name:
        raise ValueError("resume=True needs run_name: the name of the run folder to continue")
    name = config.run_name or dist_utils.broadcast_object(
        f"{config.model}-{config.dataset}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = Path(config.out_dir) / name
    config = config.replace(run_name=name)
    exists = path.is_dir() and any(path.iterdir())
    dist_utils.barrier()  # every process looked before rank 0 may create the folder
    if not exists:
        return path, config, None, False
    if not config.resume:
        raise FileExistsError(f"run folder {path} already exists: pass resume=True to continue it, "
                              "or choose a new run_name")
    if _read_json(path / "record.json").get("status") == "finished":
        return path, config, None, True
    ckpt = None
    if (path / CHECKPOINT_LAST).is_file():
        saved = load_config(path / "config.yaml")
        runtime = {k: getattr(config, k) for k in RUNTIME_KEYS}
        ignored = sorted(k for k in saved.to_dict() if k not in runtime and getattr(saved, k) != getattr(config, k))
        if ignored and info.is_main:
            print(f"resume: keeping the saved config.yaml values of {ignored}", file=sys.stderr)
        config = saved.replace(**runtime)
        ckpt = _load_checkpoint(path / CHECKPOINT_LAST)
    return path, config, ckpt, False


def _attach_log(file: Path) -> list[logging.Handler]:
    """Send the runner's log lines to ``file`` (appending) and stdout until removed."""
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(file), logging.StreamHandler(sys.stdout)]
    for h in handlers:
        h.setFormatter(fmt)
        _log.addHandler(h)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    return handlers


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, as plain types and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def _best_from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": record.get("best_epoch"), "val_acc": record.get("best_val_top1"),
            "val_top5": record.get("best_val_top5"), "val_loss": record.get("best_val_loss")}
