"""One typed configuration for every training run: notebooks, the CLI and tests share it.

A config is built from defaults, then an optional YAML file, then ``key=value`` overrides (YAML scalars:
``lr=3e-4`` is a float, ``pretrained=null`` is ``None``); an unknown key, or a key given twice, is an error,
and a deprecated key (:data:`DEPRECATED_KEYS`) is read as its new name with a ``FutureWarning``. A frozen
config validates itself whenever it is made: types from the annotations, a rule per key (:data:`RULES`) and
rules tying keys together (:data:`CROSS_RULES`), every problem reported at once in one ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .choices import DEFAULT_STEM_STRIDE, HEADS, NORMS, OPTIMIZERS, SCHEDULES, SELECTIONS, STEM_STRIDES
from .data.augment import parse_randaugment
from .data.registry import DATASETS
from .models.heads import check_num_heads
from .models.variants import MODEL_VARIANTS
from .validation import (
    ANY, FRACTION, NON_EMPTY, NON_NEGATIVE, POSITIVE_INT, CrossRule, Rule, Schema, format_problems, interval, matches,
    one_of, parses, renamed,
)

__all__ = [
    "CROSS_RULES", "DEPRECATED_KEYS", "HEADS", "NORMS", "OPTIMIZERS", "RULES", "SCHEDULES", "SELECTIONS", "STEM_STRIDES",
    "TrainConfig", "allowed_values", "config_problems", "field_names", "format_value", "from_dict", "inactive_keys",
    "load_config", "parse_overrides", "read_settings", "save_config",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; every field has a default. Validated when made (see :data:`RULES`)."""

    # data
    dataset: str = "tiny-imagenet-32"  #: a name from convnext_report.data.DATASETS
    data_dir: str | None = None  #: local parquet root; null: $CONVNEXT_REPORT_DATA, else the hub
    image_size: int = 32  #: side of the model input; the pipeline resizes on the device
    train_per_class: int | None = None  #: balanced, seeded subset of the training split
    test_per_class: int | None = None  #: balanced subset of the test split (smoke runs only)
    max_classes: int | None = None  #: keep only the first K classes (small experiments)
    crop_padding: int = 4  #: random crop with this zero padding (0: no crop)
    hflip: bool = True  #: random horizontal flip
    randaugment: str | None = None  #: e.g. "n2m9": RandAugment per sample, 2 ops, magnitude 9
    normalize_mean: list[float] | None = None  #: per-channel input mean in [0, 1]; None: the dataset's (transfer: set to the backbone's)
    normalize_std: list[float] | None = None  #: per-channel input std; None: the dataset's
    # model
    model: str = "convnextv2_atto"  #: a ConvNeXt V1 or V2 name, see models.MODEL_VARIANTS
    stem_stride: int = DEFAULT_STEM_STRIDE  #: 4 is the ImageNet stem; 1 or 2 for 32 px inputs
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
    early_stopping_patience: int | None = None  #: epochs without a better selection top-1 before stopping
    model_ema: bool = False  #: keep an EMA of the weights (timm ModelEmaV3), evaluated beside the raw weights
    model_ema_decay: float = 0.9998  #: EMA decay per step
    # model selection
    selection: str = "holdout"  #: "holdout": early stopping/best epoch on a held-out part of train, test reported once; "test": select on the reported split (the sources' protocol, optimistic)
    holdout_fraction: float = 0.1  #: class-balanced fraction of the training split held out when selection="holdout"
    test_every_epoch: bool = False  #: also evaluate the reported split every epoch (never used to select; shows what selecting on it would report)
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
    verbose: bool = True  #: print the run's log lines (log.txt in the run folder always has them)
    extra: dict[str, Any] = field(default_factory=dict)  #: free-form tags kept in the record

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError(format_problems(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (names and values are checked)."""
        return from_dict({**self.to_dict(), **renamed(changes, DEPRECATED_KEYS)})


DEVICE = matches(r"auto|cpu|mps|cuda(:\d+)?", 'a device: "auto", "cpu", "cuda", "cuda:N" or "mps"')
RUN_NAME = matches(r"(?!\.+$)[A-Za-z0-9._-]{1,200}",
                   "a folder name of 1 to 200 letters, digits and . _ - (not . or ..)")


def _channel_stats(low: float, high: float) -> Callable[[list], None]:
    """A parser that accepts three numbers in [low, high] (per-channel mean or std)."""

    def check(value: list) -> None:
        ok = len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high
                                     for v in value)
        if not ok:
            raise ValueError(f"{value!r} is not three numbers in [{low:g}, {high:g}]")

    return check


def _check_extra(value: dict) -> None:
    """Raise unless ``value`` has string keys and can be written to ``config.yaml``."""
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ValueError(f"keys must be strings, got {bad!r}")
    try:
        yaml.safe_dump(value)
    except yaml.YAMLError as err:
        raise ValueError(f"cannot be written to YAML ({err})") from None


#: key -> what its value may be (its type comes from the annotation); one line per key
RULES: Mapping[str, Rule] = {
    "dataset": one_of(DATASETS),
    "data_dir": NON_EMPTY,
    "image_size": interval("[8, 1024]"),
    "train_per_class": POSITIVE_INT,
    "test_per_class": POSITIVE_INT,
    "max_classes": POSITIVE_INT,
    "crop_padding": NON_NEGATIVE,
    "hflip": ANY,
    "randaugment": parses(parse_randaugment, "a RandAugment spec n<num_ops>m<magnitude>, e.g. 'n2m9' (magnitude 0..30)"),
    "normalize_mean": parses(_channel_stats(0.0, 1.0), "three numbers in [0, 1], one per RGB channel"),
    "normalize_std": parses(_channel_stats(1e-6, 10.0), "three positive numbers, one per RGB channel"),
    "model": one_of(MODEL_VARIANTS),
    "stem_stride": one_of(STEM_STRIDES),
    "norm": one_of(NORMS),
    "dyt_alpha_init": interval("(0, inf)"),
    "head": one_of(HEADS),
    "head_num_heads": POSITIVE_INT,
    "head_dropout": FRACTION,
    "drop_path_rate": FRACTION,
    "pretrained": NON_EMPTY,
    "freeze_backbone": ANY,
    "optimizer": one_of(OPTIMIZERS),
    "lr": NON_NEGATIVE,  # 0 keeps the weights fixed (a diagnostic the runner tests use)
    "backbone_lr_scale": NON_NEGATIVE,
    "layer_decay": interval("(0, 1]"),
    "weight_decay": NON_NEGATIVE,
    "head_weight_decay": NON_NEGATIVE,
    "momentum": FRACTION,
    "schedule": one_of(SCHEDULES),
    "warmup_epochs": NON_NEGATIVE,
    "min_lr_ratio": interval("[0, 1]"),
    "epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "grad_clip": interval("(0, inf)"),
    "label_smoothing": FRACTION,
    "mixup": NON_NEGATIVE,
    "cutmix": NON_NEGATIVE,
    "early_stopping_patience": POSITIVE_INT,
    "model_ema": ANY,
    "model_ema_decay": interval("(0, 1)"),
    "selection": one_of(SELECTIONS),
    "holdout_fraction": interval("(0, 0.5]"),
    "test_every_epoch": ANY,
    "seed": interval(f"[0, {2**63})"),
    "device": DEVICE,
    "amp": ANY,
    "channels_last": ANY,
    "compile": ANY,
    "max_steps_per_epoch": POSITIVE_INT,
    "out_dir": NON_EMPTY,
    "run_name": RUN_NAME,
    "resume": ANY,
    "progress": ANY,
    "verbose": ANY,
    "extra": parses(_check_extra, "a mapping with string keys that YAML can write"),
}


def _image_fits_stem(c: TrainConfig) -> tuple[str, str, str] | None:
    """The stem and three stride-2 downsamples must leave the last stage at least 1 px."""
    if c.image_size >= 8 * c.stem_stride:
        return None
    return ("image_size", f"{c.image_size} px leaves no pixels in the last stage with stem_stride={c.stem_stride}",
            f"image_size >= 8 * stem_stride = {8 * c.stem_stride}, or a smaller stem_stride")


def _heads_divide_width(c: TrainConfig) -> tuple[str, str, str] | None:
    """The attention head's heads must divide the model's final-stage width."""
    if c.head != "attention":
        return None
    width = MODEL_VARIANTS[c.model].dims[-1]
    try:
        check_num_heads(width, c.head_num_heads)
    except ValueError as err:
        return "head_num_heads", str(err), f"a divisor of {width}, the final-stage width of {c.model}"
    return None


def _classes_in_dataset(c: TrainConfig) -> tuple[str, str, str] | None:
    """``max_classes`` cannot exceed the dataset's classes."""
    n = DATASETS[c.dataset].num_classes
    if c.max_classes is None or c.max_classes <= n:
        return None
    return "max_classes", f"{c.max_classes} exceeds the {n} classes of {c.dataset}", f"null or 1..{n}"


CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule(("image_size", "stem_stride"), _image_fits_stem),
    CrossRule(("head", "head_num_heads", "model"), _heads_divide_width),
    CrossRule(("max_classes", "dataset"), _classes_in_dataset),
)
SCHEMA = Schema(TrainConfig, RULES, CROSS_RULES)


def config_problems(config: TrainConfig) -> list[str]:
    """Every problem of ``config``, one ``"key: what is wrong; allowed: ..."`` each (empty: valid)."""
    return SCHEMA.problems(config)


def allowed_values(key: str) -> str:
    """What ``key`` accepts, in words (e.g. "null or an integer >= 1")."""
    return SCHEMA.allowed(key)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


#: deprecated key -> (its new name, why): read as the new name, with a ``FutureWarning``
DEPRECATED_KEYS: Mapping[str, tuple[str, str]] = {"val_per_class": ("test_per_class", "it subsets the test split")}


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a config, rejecting unknown keys with the list of valid ones (deprecated keys are renamed)."""
    values = renamed(values, DEPRECATED_KEYS)
    unknown = sorted(set(values) - set(field_names()), key=str)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown}; valid keys are: {', '.join(field_names())}"
        )
    return TrainConfig(**values)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse ``["lr=1e-3", "model=convnextv2_nano"]`` into typed values; a key given twice is an error."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} is not of the form key=value")
        key, raw = (part.strip() for part in pair.split("=", 1))
        if key in out:
            raise ValueError(f"{key} is given twice ({key}={format_value(out[key])} and {pair}): give it once")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as err:
            raise ValueError(f"override {pair!r}: the value is not valid YAML ({_one_line(err)})") from None
        out[key] = _number_or_same(value)
    return out


def _number_or_same(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; read such strings as floats."""
    if isinstance(value, str) and any(c in value for c in "eE."):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def read_settings(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The keys given: the YAML file at ``path`` (if any), then the ``key=value`` overrides on top."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} {'is not a file' if p.exists() else 'does not exist'}")
        try:
            loaded = yaml.load(p.read_text(), Loader=_UniqueKeyLoader) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"config file {p} cannot be read as YAML: {_one_line(err)}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must hold a mapping of key: value")
        values.update({k: _number_or_same(v) for k, v in loaded.items()})
    values.update(parse_overrides(overrides or []))
    return values


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``key=value`` overrides."""
    return from_dict(read_settings(path, overrides))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not: the last wins)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {lines[key]} and {key_node.start_mark.line + 1}): "
                    "give it once", key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def format_value(value: Any) -> str:
    """``value`` as a YAML scalar or flow collection: null, true, 0.001, [0.5, 0.5, 0.5]."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def inactive_keys(config: TrainConfig) -> frozenset[str]:
    """The keys that change nothing given the others (a run's store key leaves them out); a frozen backbone
    stays in eval mode and out of the optimiser, and the head always trains (``head_weight_decay`` acts)."""
    rules = {
        "dyt_alpha_init": config.norm != "dyt",
        "head_num_heads": config.head != "attention",
        "model_ema_decay": not config.model_ema,
        "holdout_fraction": config.selection != "holdout",
        "min_lr_ratio": config.schedule != "cosine",
        "drop_path_rate": config.freeze_backbone,
        "backbone_lr_scale": config.freeze_backbone,
        "layer_decay": config.freeze_backbone,
        "weight_decay": config.freeze_backbone and config.head_weight_decay is not None,
    }
    return frozenset(key for key, inactive in rules.items() if inactive)
