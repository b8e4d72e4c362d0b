"""chapter: parameters, the smoke switch, folders, records, banners, backbones and recipes."""

from __future__ import annotations

import json
from importlib import metadata

import pandas as pd
import pytest
import torch

from convnext_report.config import TrainConfig
from convnext_report.data.registry import IMAGENET_MEAN, IMAGENET_STD
from convnext_report.report import backbones, banners, chapter, paths, recipes


@pytest.fixture(autouse=True)
def _folders(book_folders):
    """Every test here works in temporary book folders."""


def namespace(**extra):
    """What a notebook's globals look like after the parameters cell."""
    return {"In": ["x"], "Out": {}, "_": None, "_i1": "x", "get_ipython": print, "pd": pd,
            "smoke": False, "epochs": 30, "seeds": [0, 1, 2], "dataset": "cifar10", "lr": 1e-3, "device": "cpu",
            **extra}


def test_parameters_are_plain_public_values():
    assert chapter.parameters(namespace()) == {"smoke": False, "epochs": 30, "seeds": [0, 1, 2],
                                               "dataset": "cifar10", "lr": 1e-3, "device": "cpu"}


def test_full_configuration_by_default():
    ch = chapter.start("04_x", namespace(), title="X", smoke=dict(epochs=1))
    assert ch.configuration == "full" and ch.epochs == 30 and not ch.reductions
    assert repr(ch) == "Chapter('04_x', configuration='full')"
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        ch.nope


@pytest.mark.parametrize("how", ["parameter", "environment"])
def test_smoke_switch(how, monkeypatch):
    ns = namespace(smoke=how == "parameter")
    if how == "environment":
        monkeypatch.setenv(paths.SMOKE_ENV, "1")
    ch = chapter.start("04_x", ns, title="X", smoke=dict(epochs=1, seeds=[0]))
    assert ch.configuration == "smoke" and ch.epochs == 1 and ch.seeds == [0]
    assert ch.reductions == {"epochs": (30, 1), "seeds": ([0, 1, 2], [0])}
    assert ch.record["smoke_reductions"]["epochs"] == {"full": 30, "smoke": 1}
    table = ch.settings()
    assert table.loc["epochs", "value"] == "1" and table.loc["epochs", "full configuration"] == "30"


def test_smoke_without_reductions_is_full(monkeypatch):
    monkeypatch.setenv(paths.SMOKE_ENV, "1")
    assert chapter.start("02_x", namespace(), title="X").configuration == "full"


def test_unknown_smoke_key_is_an_error():
    with pytest.raises(ValueError, match="not parameters"):
        chapter.start("04_x", namespace(), title="X", smoke=dict(epoch=1))


def test_banner_says_smoke_and_not_a_result(monkeypatch):
    monkeypatch.setenv(paths.SMOKE_ENV, "yes")
    ch = chapter.start("04_x", namespace(), title="X", smoke=dict(epochs=1))
    text = ch.banner().data
    assert text.startswith("```{admonition} CPU smoke configuration — not a result")
    assert ":class: warning" in text and "`epochs` 30 → 1" in text
    monkeypatch.delenv(paths.SMOKE_ENV)
    full = chapter.start("04_x", namespace(), title="X", smoke=dict(epochs=1)).banner().data
    assert "Executed on CPU" in full  # the test machine has no GPU


def test_config_maps_parameters_and_changes(tmp_path):
    ch = chapter.start("04_x", namespace(), title="X")
    cfg = ch.config(model="convnextv2_nano", lr=5e-4)
    assert isinstance(cfg, TrainConfig)
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.model, cfg.progress) == ("cifar10", 30, 5e-4, "convnextv2_nano", False)
    assert cfg.out_dir == str(tmp_path / "runs" / "04_x")
    assert cfg.extra == {"chapter": "04_x", "configuration": "full"}


def test_config_hash_ignores_runtime_keys():
    a = TrainConfig()
    assert chapter.config_hash(a) == chapter.config_hash(a.replace(device="cuda", progress=False, run_name="x"))
    assert chapter.config_hash(a) != chapter.config_hash(a.replace(lr=1.0))


def test_finish_writes_the_record(tmp_path):
    ch = chapter.start("04_x", namespace(), title="X")
    path = ch.finish([{"key": "k", "mean": 1.0}])
    assert path == tmp_path / "records" / "04_x.json"
    record = json.loads(path.read_text())
    assert record["chapter"] == "04_x" and record["configuration"] == "full"
    assert record["gpu_minutes"] == 0.0 and record["minutes"] >= 0
    env = record["environment"]
    assert env["device_type"] == "cpu" and env["torch"] == metadata.version("torch")
    assert {"device", "python", "timm", "git_commit", "git_dirty"} <= set(env)
    assert record["results"] == [{"key": "k", "mean": 1.0}] and record["parameters"]["epochs"] == 30


def test_records_banner():
    assert "No chapter" in banners.records_banner([]).data
    smoke = banners.records_banner([{"chapter": "a", "configuration": "smoke"}, {"chapter": "b"}]).data
    assert "1 of the 2" in smoke and "not a result" in smoke
    assert "full configuration" in banners.records_banner([{"chapter": "b", "configuration": "full"}]).data


def test_find_backbone_explains_what_to_run():
    with pytest.raises(FileNotFoundError, match="Run chapter 03 first.*-p smoke True"):
        backbones.find_backbone("nothing", smoke=True)
    with pytest.raises(FileNotFoundError, match="chapter 03"):
        backbones.transfer_source(None, "nothing")


def test_export_and_find_backbone(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, run_dir / "checkpoint_best.pt")

    class Run:
        path = run_dir
        config = TrainConfig(model="convnext_tiny", stem_stride=2)
        history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.4, "selection_loss": 1.0, "selection_acc": 0.3}]
        record = {"device": "cpu", "wall_time_seconds": 6.0}

    path = backbones.export_backbone(Run(), "bb", smoke=True)
    assert path == tmp_path / "runs" / "backbones" / "bb-smoke.pt"
    saved = torch.load(path, weights_only=False)
    assert torch.equal(saved["model"]["w"], torch.ones(2)) and saved["meta"]["model"] == "convnext_tiny"
    found, meta = backbones.find_backbone("bb", smoke=True)
    assert found == path and meta["test_top1"] == pytest.approx(30.0)
    source = backbones.transfer_source(None, "bb", smoke=True)
    identity = {"pretrained_identity": f"run:{meta['store_key']}"}  # the backbone's identity: its run's store key
    stats = {"normalize_mean": list(IMAGENET_MEAN), "normalize_std": list(IMAGENET_STD)}  # as in pretraining
    assert source == {"model": "convnext_tiny", "stem_stride": 2, "image_size": 32, "norm": "layernorm",
                      "pretrained": str(path), "extra": identity, **stats}
    assert backbones.transfer_source(str(path), "ignored")["model"] == "convnext_tiny"
    assert backbones.transfer_source("convnext_tiny.fb_in1k", "ignored")["image_size"] == 224
    with pytest.raises(FileNotFoundError, match="neither a file nor a known timm id"):
        backbones.transfer_source("nope.pt", "bb")


def test_recipes_and_grid():
    source = recipes.recipe("source", model="convnextv2_base")
    assert source["stem_stride"] == 4 and source["lr"] == 1e-3 and source["schedule"] == "constant"
    assert source["extra"] == {"recipe": "source"} and source["model"] == "convnextv2_base"
    TrainConfig(**{k: v for k, v in recipes.recipe("small-image").items()})  # every key is a config field
    with pytest.raises(ValueError, match="choose one of"):
        recipes.recipe("nope")
    grid = recipes.grid({"lr": 1.0}, model=["a", "b"], optimizer=["sgd", "adamw"])
    assert list(grid) == ["a / sgd", "a / adamw", "b / sgd", "b / adamw"]
    assert grid["b / adamw"] == {"lr": 1.0, "model": "b", "optimizer": "adamw"}


def test_repo_root_and_default_folders(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.RECORDS_ENV)
    root = paths.repo_root()
    assert (root / "_toc.yml").is_file()
    # records go to the repository only when publishing; otherwise to the untracked runs folder
    assert paths.records_dir() == tmp_path / "runs" / "records"
    assert paths.record_layers() == [tmp_path / "runs" / "records", root / "book" / "records"]
    monkeypatch.setenv(paths.PUBLISH_ENV, "1")
    assert paths.records_dir() == root / "book" / "records"
    assert paths.record_layers() == [root / "book" / "records"]
