"""TrainConfig: defaults, YAML files, key=value overrides and clear errors."""

from __future__ import annotations

import re

import pytest

from convnext_report.config import TrainConfig, from_dict, load_config, parse_overrides, save_config


def test_overrides_are_typed() -> None:
    values = parse_overrides(["lr=3e-4", "epochs=5", "pretrained=null", "randaugment=n2m9", "amp=false"])
    assert values == {"lr": 3e-4, "epochs": 5, "pretrained": None, "randaugment": "n2m9", "amp": False}


def test_yaml_then_overrides(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: convnextv2_nano\nlr: 0.001\nepochs: 3\n")
    config = load_config(path, ["epochs=7"])
    assert (config.model, config.lr, config.epochs) == ("convnextv2_nano", 1e-3, 7)
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ValueError, match="unknown config key.*'learning_rate'.*valid keys are: .*lr"):
        load_config(None, ["learning_rate=0.1"])


def test_malformed_override_and_missing_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_replace_checks_names() -> None:
    assert TrainConfig().replace(seed=3).seed == 3
    with pytest.raises(ValueError):
        TrainConfig().replace(sed=3)


DEPRECATED = "config key 'val_per_class' is deprecated: use 'test_per_class' (it subsets the test split)"


def test_val_per_class_is_a_deprecated_alias(tmp_path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("val_per_class: 7\n")
    made = {
        "from_dict": lambda: from_dict({"val_per_class": 7}),
        "yaml": lambda: load_config(path),
        "override": lambda: load_config(None, ["val_per_class=7"]),
        "replace": lambda: TrainConfig().replace(val_per_class=7),
    }
    for how, make in made.items():
        with pytest.warns(FutureWarning, match=re.escape(DEPRECATED)):
            config = make()
        assert config.test_per_class == 7, how
    assert "val_per_class" not in TrainConfig().to_dict()


def test_val_per_class_and_test_per_class_together_are_an_error(tmp_path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text("val_per_class: 7\n")
    for make in (lambda: from_dict({"val_per_class": 7, "test_per_class": 7}),
                 lambda: load_config(path, ["test_per_class=5"])):
        with pytest.raises(ValueError, match="'val_per_class' and 'test_per_class' are the same setting"):
            make()


def test_a_key_given_twice_is_an_error_naming_it(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"lr is given twice \(lr=0.1 and lr=0.2\): give it once"):
        parse_overrides(["lr=0.1", "epochs=2", "lr=0.2"])
    (tmp_path / "f.yaml").write_text("lr: 0.1\nepochs: 2\nlr: 0.2\n")
    with pytest.raises(ValueError, match=r"f.yaml cannot be read as YAML: key 'lr' is given twice \(lines 1 and 3\)"):
        load_config(tmp_path / "f.yaml")
