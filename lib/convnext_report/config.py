"""One typed configuration for every training run: notebooks, the CLI and tests share it.

A config is built from defaults, then an optional YAML file, then ``key=value``
overrides (values parsed as YAML scalars, so ``lr=3e-4`` is a float and
``pretrained=null`` is ``None``). Unknown keys are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """Everything a run needs; every field has a default."""

    # data
    dataset: str = "tiny-imagenet-32"  #: a name from ``convnext_report.data.DATASETS``
    data_dir: str | None = None  #: local parquet root; ``None``: $CONVNEXT_REPORT_DATA, else the hub
    image_size: int = 32  #: side of the model input; the pipeline resizes on the device
    train_per_class: int | None = None  #: balanced, seeded subset of the training split
    val_per_class: int | None = None  #: balanced subset of validation (smoke runs only)
    max_classes: int | None = None  #: keep only the first K classes (small experiments)
    crop_padding: int = 4  #: random crop with this zero padding (0: no crop)
    hflip: bool = True  #: random horizontal flip
    randaugment: str | None = None  #: e.g. "n2m9": RandAugment per sample, 2 ops, magnitude 9
    # model
    model: str = "convnextv2_atto"  #: a ConvNeXt V1 or V2 name, see ``models.MODEL_VARIANTS``
    stem_stride: int = 2  #: 4 is the ImageNet stem; 1 or 2 for 32 px inputs
    norm: str = "layernorm"  #: "layernorm" or "dyt"
    dyt_alpha_init: float = 0.5  #: initial DyT alpha
    head: str = "linear"  #: "linear" (timm's) or "attention"
    head_num_heads: int = 8  #: attention head: number of heads
    head_dropout: float = 0.0  #: dropout before the classifier
    drop_path_rate: float = 0.1  #: stochastic depth, linearly increasing over blocks
    pretrained: str | None = None  #: timm id (e.g. convnext_tiny.fb_in1k) or a local checkpoint
    freeze_backbone: bool = False  #: train the head only
    # optimisation
    optimizer: str = "adamw"  #: "sgd" (Nesterov), "radam" or "adamw"
    lr: float = 2e-3  #: peak learning rate of the head group (backbone: lr * backbone_lr_scale)
    backbone_lr_scale: float = 1.0  #: differential learning rate for the backbone
    layer_decay: float | None = None  #: layer-wise lr decay over backbone stages (e.g. 0.8)
    weight_decay: float = 0.05  #: decoupled weight decay (never on norms, biases, DyT, GRN)
    head_weight_decay: float | None = None  #: separate weight decay for the head
    momentum: float = 0.9  #: SGD momentum / Adam beta1
    schedule: str = "cosine"  #: "cosine" or "constant", stepped per iteration
    warmup_epochs: float = 0.0  #: linear warmup length in epochs
    min_lr_ratio: float = 0.01  #: cosine floor as a fraction of the peak lr
    epochs: int = 30
    batch_size: int = 256
    grad_clip: float | None = None  #: clip the global grad norm
    label_smoothing: float = 0.0
    mixup: float = 0.0  #: Mixup alpha (0: off)
    cutmix: float = 0.0  #: CutMix alpha (0: off)
    early_stopping_patience: int | None = None  #: epochs without val improvement before stopping
    model_ema: bool = False  #: keep an EMA of the weights (timm ModelEmaV3), evaluated beside the raw weights
    model_ema_decay: float = 0.9998  #: EMA decay per step
    # model selection
    selection: str = "holdout"  #: "holdout": early stopping/best epoch on a held-out part of train, test reported once; "test": select on the reported split (the sources' protocol, optimistic)
    holdout_fraction: float = 0.1  #: class-balanced fraction of the training split held out when selection="holdout"
    # runtime
    seed: int = 0
    device: str = "auto"  #: "auto", "cpu", "cuda", "cuda:1", ...
    amp: bool = True  #: bf16 autocast on CUDA (always fp32 on CPU)
    channels_last: bool = True  #: channels_last memory format (CUDA only; slower on CPU)
    compile: bool | None = None  #: torch.compile the model; None: on CUDA yes, on CPU no
    max_steps_per_epoch: int | None = None  #: cap iterations per epoch (smoke runs)
    out_dir: str = "runs"  #: parent folder of run folders
    run_name: str | None = None  #: run folder name; default: <model>-<dataset>-s<seed>-<time>
    resume: bool = False  #: continue an existing run folder from its last checkpoint
    progress: bool = True  #: tqdm progress bars
    extra: dict[str, Any] = field(default_factory=dict)  #: free-form tags kept in the record

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (names are checked)."""
        return from_dict({**self.to_dict(), **changes})


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a config, rejecting unknown keys with the list of valid ones."""
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown}; valid keys are: {', '.join(field_names())}"
        )
    return TrainConfig(**values)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse ``["lr=1e-3", "model=convnextv2_nano"]`` into typed values."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} is not of the form key=value")
        key, raw = pair.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        # YAML reads 1e-3 as a string; accept it as a float
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in "eE.") else value
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping of key: value")
        values.update(loaded)
    values.update(parse_overrides(overrides or []))
    return from_dict(values)


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
