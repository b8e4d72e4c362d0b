"""TrainConfig validates every key (type, range, choices, cross-key rules) when it is made."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from convnext_report.config import TrainConfig, field_names, from_dict, load_config, parse_overrides

# key, a valid value, an invalid value, what the message must say about the invalid one
CASES = [
    ("epochs", 1, 0, "0 is out of range; allowed: an integer >= 1"),
    ("epochs", 5, "abc", "must be an integer, got 'abc' (str)"),
    ("epochs", 5, 5.0, "must be an integer, got 5.0 (float)"),
    ("epochs", 5, True, "must be an integer, got True (bool)"),
    ("batch_size", 100, 1e2, "must be an integer, got 100.0 (float)"),
    ("batch_size", 1, 0, "out of range"),
    ("hflip", False, "maybe", "must be true or false, got 'maybe' (str)"),
    ("hflip", True, 1, "must be true or false, got 1 (int)"),
    ("crop_padding", 0, -2, "-2 is out of range; allowed: an integer >= 0"),
    ("image_size", 16, 4, "allowed: an integer in [8, 1024]"),
    ("run_name", "a-b_c.1", 123, "must be a string, got 123 (int)"),
    ("run_name", None, "a/b", "'a/b' is not valid"),
    ("run_name", "x", "..", "'..' is not valid"),
    ("run_name", "x", "", "'' is not valid"),
    ("run_name", "x" * 200, "x" * 201, "allowed: null or a folder name of 1 to 200 letters"),  # the limit, named
    ("lr", 1, -1e-3, "out of range"),  # an int is a float
    ("lr", 3e-4, math.nan, "must be a finite number, got nan (float)"),
    ("lr", 3e-4, math.inf, "must be a finite number"),
    ("lr", 3e-4, True, "must be a number, got True (bool)"),
    ("lr", 3e-4, "fast", "must be a number, got 'fast' (str)"),
    ("weight_decay", 0, -0.1, "out of range"),
    ("backbone_lr_scale", 0.1, -1.0, "out of range"),
    ("layer_decay", None, 0.0, "allowed: null or a number in (0, 1]"),
    ("head_weight_decay", None, -1.0, "out of range"),
    ("momentum", 0.0, 1.0, "allowed: a number in [0, 1)"),
    ("drop_path_rate", 0.0, 1.0, "allowed: a number in [0, 1)"),
    ("head_dropout", 0.5, -0.1, "out of range"),
    ("label_smoothing", 0.1, 1.0, "out of range"),
    ("mixup", 0.8, -1.0, "out of range"),
    ("cutmix", 1.0, -0.5, "out of range"),
    ("min_lr_ratio", 1.0, 1.5, "out of range"),
    ("warmup_epochs", 0.5, -1.0, "out of range"),
    ("dyt_alpha_init", 1.0, 0.0, "out of range"),
    ("holdout_fraction", 0.5, 0.0, "allowed: a number in (0, 0.5]"),
    ("holdout_fraction", 0.1, 0.6, "out of range"),
    ("model_ema_decay", 0.999, 1.0, "allowed: a number in (0, 1)"),
    ("grad_clip", None, 0.0, "allowed: null or a number > 0"),
    ("early_stopping_patience", None, 0, "allowed: null or an integer >= 1"),
    ("max_steps_per_epoch", 3, 0, "out of range"),
    ("train_per_class", None, 0, "out of range"),
    ("test_per_class", 5, -1, "out of range"),
    ("max_classes", 3, 0, "out of range"),
    ("head_num_heads", 4, 0, "out of range"),
    ("seed", 7, -1, "out of range"),
    ("model", "convnext_tiny", "resnet50", "unknown model 'resnet50'; allowed: convnext_tiny"),
    ("dataset", "cifar10", "mnist", "unknown dataset 'mnist'; allowed: tiny-imagenet-32"),
    ("optimizer", "sgd", "lamb", "unknown optimizer 'lamb'; allowed: sgd, radam, adamw"),
    ("schedule", "constant", "step", "unknown schedule 'step'; allowed: cosine, constant"),
    ("norm", "dyt", "batchnorm", "allowed: layernorm, dyt"),
    ("head", "attention", "mlp", "allowed: linear, attention"),
    ("stem_stride", 4, 3, "unknown stem_stride 3; allowed: 1, 2, 4"),
    ("stem_stride", 1, 2.0, "must be an integer"),
    ("selection", "test", "val", "allowed: holdout, test"),
    ("randaugment", "m9n2", "x3", "cannot parse RandAugment spec 'x3'"),
    ("randaugment", None, "n2m99", "magnitude must be in 0..30"),
    ("randaugment", "n2m9", 9, "must be a string, got 9 (int)"),
    ("device", "cuda:1", "gpu", "'gpu' is not valid; allowed: a device"),
    ("device", "mps", "cuda:x", "is not valid"),
    ("compile", None, "yes", "must be true or false"),
    ("data_dir", None, 5, "must be a string, got 5 (int)"),
    ("out_dir", "runs", "", "'' is not valid"),
    ("pretrained", None, "  ", "is not valid"),
    ("extra", {"tag": [1, 2]}, [1], "must be a mapping, got [1] (list)"),
    ("extra", {}, {1: "a"}, "keys must be strings"),
    ("extra", {}, {"where": Path("x")}, "cannot be written to YAML"),
]


@pytest.mark.parametrize("key,good,bad,says", CASES, ids=[f"{c[0]}={c[2]!r}" for c in CASES])
def test_each_key_is_checked(key, good, bad, says) -> None:
    assert getattr(TrainConfig(**{key: good}), key) == good
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: bad})
    line = next(line.strip() for line in str(err.value).splitlines() if line.strip().startswith(f"{key}:"))
    assert says in line and "; allowed: " in line, line


def test_all_problems_are_listed_at_once() -> None:
    with pytest.raises(ValueError) as err:
        TrainConfig(epochs=0, lr=-1.0, model="resnet50", hflip="maybe")
    msg = str(err.value)
    assert msg.startswith("invalid config (4 problems")
    lines = [line.strip() for line in msg.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines] == ["hflip", "model", "lr", "epochs"]  # field order
    assert all(re.fullmatch(r"\w+: .+; allowed: .+", line) for line in lines), lines


@pytest.mark.parametrize("changes,key,says", [
    (dict(image_size=16, stem_stride=4), "image_size", "image_size >= 8 * stem_stride = 32"),
    (dict(head="attention", head_num_heads=7), "head_num_heads", "must divide the final-stage width 320"),
    (dict(dataset="cifar10", max_classes=11), "max_classes", "exceeds the 10 classes of cifar10"),
])
def test_keys_that_depend_on_each_other(changes, key, says) -> None:
    fine = {**changes, key: TrainConfig.__dataclass_fields__[key].default}
    TrainConfig(**fine)
    with pytest.raises(ValueError, match=rf"{key}: .*{re.escape(says)}"):
        TrainConfig(**changes)


def test_every_way_of_making_a_config_validates(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 0\n")
    makers = {
        "from_dict": lambda: from_dict({"epochs": 0}),
        "replace": lambda: TrainConfig().replace(epochs=0),
        "dataclasses.replace": lambda: dataclasses.replace(TrainConfig(), epochs=0),
        "load_config file": lambda: load_config(bad),
        "load_config override": lambda: load_config(None, ["epochs=0"]),
    }
    for name, make in makers.items():
        with pytest.raises(ValueError, match="epochs: 0 is out of range"):
            make()
            pytest.fail(name)
    with pytest.raises(dataclasses.FrozenInstanceError):  # no way around validation: use replace()
        TrainConfig().epochs = 0


def test_overrides_keep_yaml_types_and_bad_ones_name_the_key() -> None:
    assert parse_overrides(["epochs=abc", "lr=3e-4", "run_name=7"]) == {"epochs": "abc", "lr": 3e-4, "run_name": 7}
    with pytest.raises(ValueError, match=r"epochs: must be an integer, got 'abc' \(str\)"):
        load_config(None, ["epochs=abc"])
    with pytest.raises(ValueError, match=r"batch_size: must be an integer, got 100.0 \(float\)"):
        load_config(None, ["batch_size=1e2"])
    with pytest.raises(ValueError, match=r"run_name: must be a string, got 7 \(int\)"):
        load_config(None, ["run_name=7"])
    with pytest.raises(ValueError, match=r"override 'epochs=\[1': the value is not valid YAML"):
        parse_overrides(["epochs=[1"])


def test_config_files_read_numbers_as_overrides_do(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5E-4\nepochs: 1e2\n")  # YAML 1.1: strings without the fix
    with pytest.raises(ValueError, match=r"epochs: must be an integer, got 100.0 \(float\)"):
        load_config(path)
    config = load_config(path, ["epochs=3"])
    assert (config.lr, config.weight_decay, config.epochs) == (1e-3, 5e-4, 3)


def test_bad_config_files_are_value_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="cannot be read as YAML"):
        load_config(broken)
    numeric_keys = tmp_path / "keys.yaml"
    numeric_keys.write_text("1: 2\nfoo: 3\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \[1, 'foo'\]"):
        load_config(numeric_keys)


def test_every_key_has_one_rule_and_the_choices_are_public() -> None:
    from convnext_report import config
    from convnext_report.data.registry import DATASETS
    from convnext_report.models.variants import MODEL_VARIANTS

    assert list(config.RULES) == field_names()
    assert config.OPTIMIZERS == ("sgd", "radam", "adamw") and config.SCHEDULES == ("cosine", "constant")
    assert config.NORMS == ("layernorm", "dyt") and config.HEADS == ("linear", "attention")
    assert config.STEM_STRIDES == (1, 2, 4) and config.SELECTIONS == ("holdout", "test")
    for name in MODEL_VARIANTS:
        TrainConfig(model=name)
    for name in DATASETS:
        TrainConfig(dataset=name)
    assert config.allowed_values("early_stopping_patience") == "null or an integer >= 1"
