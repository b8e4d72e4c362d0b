"""chapter: parameters (declared, changed, refused), folders, records, banner, findings, backbones and recipes."""

from __future__ import annotations

import json
from importlib import metadata

import pandas as pd
import pytest
import torch

from convnext_report.config import TrainConfig
from convnext_report.data.registry import IMAGENET_MEAN, IMAGENET_STD
from convnext_report.report import backbones, chapter, experiments


#: the parameters cell of the chapters below (``04_x`` has a smoke file in the test's book)
DEFAULTS = {"smoke": False, "epochs": 30, "seeds": [0, 1, 2], "dataset": "cifar10", "lr": 1e-3, "device": "cpu"}


@pytest.fixture(autouse=True)
def _folders(book_copy):
    """Every test here works in a book of its own; chapter 04_x's smoke file sets epochs 1 and seed 0."""
    (book_copy / "book" / "params" / "04_x.smoke.yaml").write_text("smoke: true\nepochs: 1\nseeds: [0]\n")


def namespace(**extra):
    """What a notebook's globals look like after the parameters cell (and papermill's injected cell)."""
    return {"In": ["x"], "Out": {}, "_": None, "_i1": "x", "get_ipython": print, "pd": pd, **DEFAULTS, **extra}


def start(**extra):
    return chapter.start("04_x", namespace(**extra), title="X", defaults=DEFAULTS)


def test_parameters_are_plain_public_values():
    assert chapter.parameters(namespace()) == DEFAULTS


def test_full_configuration_by_default():
    ch = start()
    assert ch.configuration == "full" and ch.epochs == 30 and not ch.changed
    assert repr(ch) == "Chapter('04_x', configuration='full')"
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        ch.nope


def test_the_smoke_file_and_passed_values_are_told_apart():
    ch = start(smoke=True, epochs=1, seeds=[0], lr=0.5)  # papermill -f 04_x.smoke.yaml -p lr 0.5
    assert ch.configuration == "smoke" and ch.epochs == 1 and ch.seeds == [0]
    assert ch.changed == {"smoke": (False, "smoke file"), "epochs": (30, "smoke file"),
                          "seeds": ([0, 1, 2], "smoke file"), "lr": (1e-3, "passed (-p/-y)")}
    assert ch.record["changed"]["epochs"] == {"full": 30, "value": 1, "by": "smoke file"}
    # -p epochs 2 with the smoke file: 2 is not the smoke file's value, so it reads as passed
    assert start(smoke=True, epochs=2).changed["epochs"] == (30, "passed (-p/-y)")
    # without smoke, a value that equals the smoke file's is still passed
    assert start(epochs=1).changed == {"epochs": (30, "passed (-p/-y)")}


def test_unknown_parameters_and_empty_seeds_are_refused():
    with pytest.raises(ValueError, match=r"04_x: \['lrr'\] is not a parameter of this chapter.*parameters: dataset, "
                                         r"device, epochs, lr, seeds, smoke"):
        start(lrr=0.1)  # papermill -p lrr 0.1 only warns
    with pytest.raises(ValueError, match="at least one seed is needed"):
        start(seeds=[])  # -y "seeds: []"


def test_parameters_come_from_the_notebook_by_default(book_copy):
    ns = {"smoke": False, "dataset": "cifar100", "model": "convnextv2_tiny", "norms": ["layernorm", "dyt"]}
    with pytest.raises(ValueError, match="'typo'"):
        chapter.start("07_normalisation", {**ns, "typo": 1}, title="T")
    ch = chapter.start("07_normalisation", {**ns, "epochs": 3}, title="T")
    assert ch.epochs == 3 and ch.dyt_alpha_init == 0.5 and ch.changed == {"epochs": (20, "passed (-p/-y)")}


def test_banner_lists_the_smoke_files_and_the_passed_values_apart():
    text = chapter.chapter_banner(start(smoke=True, epochs=1, lr=0.5).record)
    assert text.startswith("```{admonition} Smoke configuration — not a result") and ":class: warning" in text
    assert "- set by the smoke file: `epochs` 30 → 1, `seeds`" not in text  # seeds were not changed here
    assert "- set by the smoke file: `epochs` 30 → 1\n- passed with `-p`/`-y`: `lr` 0.001 → 0.5" in text
    assert "`smoke`" not in text  # the configuration is the title, not a change
    full = chapter.chapter_banner(start(lr=0.5).record)
    assert "Executed in the full configuration on" in full and ":class: note" in full
    assert "- passed with `-p`/`-y`: `lr` 0.001 → 0.5" in full and "smoke file" not in full
    assert "defaults in:" not in chapter.chapter_banner(start().record)


def test_findings_say_no_results_once_in_smoke_and_the_sentence_in_full():
    rows = [{"key": "k", "configuration": "smoke", "mean": 40.0, "std": None, "n_seeds": 1, "metric": "top-1"}]
    smoke = start(smoke=True, epochs=1)
    assert smoke.findings(rows, "It reaches {k}.").data == chapter.NO_RESULTS
    assert smoke.findings(rows, "Again {k}.") is None  # said once per page: the cell shows nothing
    full = [{**rows[0], "configuration": "full"}]
    assert start().findings(full, "It reaches **{k}** in {epochs} epochs.").data == \
        "It reaches **40.0 % (1 seed)** in 30 epochs."


def test_config_maps_parameters_and_changes(tmp_path):
    ch = start()
    cfg = ch.config(model="convnextv2_nano", lr=5e-4)
    assert isinstance(cfg, TrainConfig)
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.model, cfg.progress) == ("cifar10", 30, 5e-4, "convnextv2_nano", False)
    assert cfg.out_dir == str(tmp_path / "runs" / "04_x")
    assert cfg.extra == {"chapter": "04_x", "configuration": "full"}


def test_finish_writes_the_record(tmp_path):
    ch = start(lr=0.5)
    path = ch.finish([{"key": "k", "mean": 1.0}])
    assert path == tmp_path / "runs" / "records" / "04_x.json"
    record = json.loads(path.read_text())
    assert record["chapter"] == "04_x" and record["configuration"] == "full"
    assert record["gpu_minutes"] == 0.0 and record["minutes"] >= 0
    env = record["environment"]
    assert env["device_type"] == "cpu" and env["torch"] == metadata.version("torch")
    assert {"device", "python", "timm", "git_commit", "git_dirty"} <= set(env)
    assert record["results"] == [{"key": "k", "mean": 1.0}] and record["parameters"]["epochs"] == 30
    assert record["changed"] == {"lr": {"full": 1e-3, "value": 0.5, "by": "passed (-p/-y)"}}


def test_a_missing_backbone_says_what_to_run():
    with pytest.raises(FileNotFoundError, match="Execute chapter 03 first.*-f book/params/03_source_backbone.smoke"):
        backbones.backbone_meta("nothing", smoke=True)
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
    meta = backbones.backbone_meta("bb", smoke=True)
    assert meta["test_top1"] == pytest.approx(30.0) and meta["model"] == "convnext_tiny"
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
    source = experiments.recipe("source", model="convnextv2_base")
    assert source["stem_stride"] == 4 and source["lr"] == 1e-3 and source["schedule"] == "constant"
    assert source["extra"] == {"recipe": "source"} and source["model"] == "convnextv2_base"
    TrainConfig(**{k: v for k, v in experiments.recipe("small-image").items()})  # every key is a config field
    with pytest.raises(ValueError, match="choose one of"):
        experiments.recipe("nope")
    grid = experiments.grid({"lr": 1.0}, model=["a", "b"], optimizer=["sgd", "adamw"])
    assert list(grid) == ["a / sgd", "a / adamw", "b / sgd", "b / adamw"]
    assert grid["b / adamw"] == {"lr": 1.0, "model": "b", "optimizer": "adamw"}
