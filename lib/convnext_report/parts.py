"""Everything a run is built from, made from its config: data, loaders, model, optimiser,
schedule, criterion and Mixup. No files are read or written here except the data cache."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from .accel import compile_model, should_compile
from .config import TrainConfig
from .data import DeviceLoader, ImageTensors, get_dataset_spec, load_split, make_eval_transform, make_train_transform
from .data.subsets import held_out_count, holdout_split
from .distributed import DistInfo
from .frozen import HeadOnly, cached_feature_loaders
from .models import build_model_from_config
from .optim import build_optimizer, build_scheduler

_log = logging.getLogger("convnext_report.run")

__all__ = [
    "Parts", "build_criterion", "build_mixup", "build_parts", "fast_path_allowed", "load_data", "normalization",
    "loaded_images", "seed_everything", "split_sizes", "wrap_model",
]


@dataclass
class Parts:
    """The pieces of one run. ``model`` is the bare module (its ``state_dict`` is what checkpoints
    hold); :func:`wrap_model` gives the modules to train and evaluate."""

    model: nn.Module
    train_loader: Any
    selection_loader: Any  #: the selection split: held-out training images, or the test split (selection="test")
    test_loader: Any  #: the reported split (the dataset's test split); the same object as selection_loader under "test"
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: nn.Module
    mixup: Mixup | None
    fast_path: bool  #: the frozen-backbone features were computed once (see :mod:`convnext_report.frozen`)
    channels_last: bool  #: inputs and weights in channels_last (CUDA only)
    class_names: list[str]
    num_train_images: int
    num_selection_images: int
    num_test_images: int
    test_rows: torch.Tensor | None  #: rows of the full test split (None: all of it)
    data_seconds: float
    data_from_cache: bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_data(config: TrainConfig, split: str) -> ImageTensors:
    """The images of one split of the run: ``"train"`` (what the model trains on), ``"holdout"`` (the
    held-out part of the training split that selects the epoch, with ``selection="holdout"``) or
    ``"test"`` (the dataset's evaluation split, which is reported; ``test_per_class`` subsets it)."""
    if split == "test":
        return load_split(config.dataset, "test", data_dir=config.data_dir, per_class=config.test_per_class,
                          max_classes=config.max_classes, seed=config.seed)
    if split not in ("train", "holdout"):
        raise ValueError(f"split must be 'train', 'holdout' or 'test', got {split!r}")
    train = load_split(config.dataset, "train", data_dir=config.data_dir, per_class=config.train_per_class,
                       max_classes=config.max_classes, seed=config.seed)
    if config.selection != "holdout":
        if split == "holdout":
            raise ValueError("this run selects on the test split (selection='test'): it holds nothing out")
        return train
    kept, held = holdout_split(train.labels, config.holdout_fraction, config.seed)
    return train.subset(kept) if split == "train" else train.subset(held, "holdout")


def split_sizes(config: TrainConfig) -> tuple[int, int, int]:
    """How many images :func:`load_data` gives (train, selecting the epoch, test), from the dataset registry
    alone (no data read); with ``selection="test"`` the last two are the same split."""
    spec = get_dataset_spec(config.dataset)
    classes = config.max_classes or spec.num_classes
    train, test = spec.per_class["train"], spec.per_class["test"]
    per_class = min(config.train_per_class or train, train)
    reported = classes * min(config.test_per_class or test, test)
    if config.selection != "holdout":
        return classes * per_class, reported, reported
    held = held_out_count(per_class, config.holdout_fraction)
    return classes * (per_class - held), classes * held, reported


def loaded_images(config: TrainConfig) -> int:
    """Distinct images a run loads: train, held-out (with ``selection="holdout"``) and test."""
    train, held, test = split_sizes(config)
    return train + test + (held if config.selection == "holdout" else 0)


def normalization(config: TrainConfig) -> tuple[list[float], list[float]]:
    """(mean, std) of the inputs: the config's, else the dataset's."""
    spec = get_dataset_spec(config.dataset)
    return list(config.normalize_mean or spec.mean), list(config.normalize_std or spec.std)


def fast_path_allowed(config: TrainConfig) -> bool:
    """Frozen backbone and nothing random before the head: features can be computed once."""
    return (config.freeze_backbone and not config.randaugment and config.crop_padding == 0 and not config.hflip
            and config.mixup <= 0 and config.cutmix <= 0)


def build_criterion(config: TrainConfig, *, mixup: bool) -> nn.Module:
    """Soft-target cross-entropy under Mixup/CutMix (which then applies label smoothing), else
    cross-entropy with ``label_smoothing``."""
    return SoftTargetCrossEntropy() if mixup else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


def build_mixup(config: TrainConfig, num_classes: int) -> Mixup | None:
    """timm's Mixup/CutMix when either alpha is > 0 (needs an even batch size)."""
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    if config.batch_size % 2:
        raise ValueError(f"mixup/cutmix need an even batch_size, got {config.batch_size}")
    return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.label_smoothing,
                 num_classes=num_classes)


def build_parts(config: TrainConfig, info: DistInfo) -> Parts:
    """Data, model, loaders, optimiser, schedule, criterion and Mixup of a run, seeded by ``config.seed``
    (the model's initialisation is the same on every process; augmentation differs per process)."""
    c, device = config, info.device
    seed_everything(c.seed)
    t0 = time.perf_counter()
    train_data, test_data = load_data(c, "train"), load_data(c, "test")
    selection_data = load_data(c, "holdout") if c.selection == "holdout" else test_data
    data_seconds = time.perf_counter() - t0
    # channels_last helps CUDA convolutions; on CPU it is 10-20% slower, so it is CUDA-only
    channels_last = c.channels_last and device.type == "cuda"
    class_names = list(train_data.class_names)
    model = build_model_from_config(c, len(class_names)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    seed_everything(c.seed + info.rank)
    train_loader, selection_loader, test_loader, fast_path = _loaders(c, info, model, train_data, selection_data,
                                                                      test_data, channels_last)
    steps = len(train_loader)
    if steps == 0:
        raise ValueError(f"{len(train_data.labels)} training images give no full batch of {c.batch_size}: "
                         "lower batch_size")
    optimizer = build_optimizer(model, c)
    mixup = build_mixup(c, len(class_names))
    return Parts(
        model=model, train_loader=train_loader, selection_loader=selection_loader, test_loader=test_loader,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, c, steps), criterion=build_criterion(c, mixup=mixup is not None),
        mixup=mixup, fast_path=fast_path, channels_last=channels_last, class_names=class_names,
        num_train_images=len(train_data), num_selection_images=len(selection_data), num_test_images=len(test_data),
        test_rows=test_data.rows, data_seconds=data_seconds,
        data_from_cache=bool(train_data.from_cache and test_data.from_cache),
    )


def _loaders(config: TrainConfig, info: DistInfo, model: nn.Module, train_data: ImageTensors,
             selection_data: ImageTensors, test_data: ImageTensors, channels_last: bool) -> tuple[Any, Any, Any, bool]:
    """(train, selection, test loaders, fast path taken): cached features for a frozen backbone when they fit."""
    c, device = config, info.device
    mean, std = normalization(c)
    eval_tf = make_eval_transform((mean, std), c.image_size)

    def eval_loader(data: ImageTensors) -> DeviceLoader:
        return DeviceLoader(data, c.batch_size, transform=eval_tf, shuffle=False, drop_last=False, device=device)

    test = eval_loader(test_data)
    selection = test if selection_data is test_data else eval_loader(selection_data)
    if fast_path_allowed(c):
        evals = [selection] if selection is test else [selection, test]
        cached = cached_feature_loaders(model, train_data, evals, transform=eval_tf, batch_size=c.batch_size,
                                        device=device, amp=c.amp, channels_last=channels_last, seed=c.seed,
                                        rank=info.rank, world_size=info.world_size,
                                        max_steps=c.max_steps_per_epoch)
        if cached is not None:
            train, (selection_features, *rest) = cached
            return train, selection_features, rest[0] if rest else selection_features, True
        _log.info("frozen backbone: features too large to cache, training through the backbone")
    train_tf = make_train_transform((mean, std), c.image_size, crop_padding=c.crop_padding, hflip=c.hflip,
                                    randaugment=c.randaugment)
    # full batches only under Mixup (pairs) or torch.compile (one static shape)
    drop_last = c.mixup > 0 or c.cutmix > 0 or should_compile(c.compile, device)
    train = DeviceLoader(train_data, c.batch_size, transform=train_tf, shuffle=True, drop_last=drop_last,
                         device=device, seed=c.seed, rank=info.rank, world_size=info.world_size,
                         max_steps=c.max_steps_per_epoch)
    return train, selection, test, False


def wrap_model(model: nn.Module, *, fast_path: bool, info: DistInfo, compile: bool | None) -> tuple[nn.Module, nn.Module]:
    """(module to train, module to evaluate): head-only for cached features, DDP, then ``torch.compile``
    (:func:`convnext_report.accel.compile_model`: on CUDA by default, never for a head alone)."""
    if fast_path:
        model = HeadOnly(model)
    train_model, eval_model = model, model
    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    enabled = False if fast_path else compile
    return (compile_model(train_model, device=info.device, enabled=enabled),
            compile_model(eval_model, device=info.device, enabled=enabled))
