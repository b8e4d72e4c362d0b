"""Each chapter's parameters as papermill sees them and its runs as data (labels -> config changes; chapters 6-7: grids
over two training recipes): the notebooks and the plan build the same runs (the same store keys) from the same
parameters (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import TrainConfig, field_names, from_dict
from .backbones import backbone_path, config_meta, exported_source, transfer_source
from .store import repo_root

__all__ = ["RECIPES", "TRAINING_CHAPTERS", "TRANSFER_CHAIN", "ablations", "baseline", "chapter_groups",
           "chapter_params", "check_files", "defaults", "grid", "improved", "normalisation_grids", "notebook",
           "optimiser_grids", "passed", "read_files", "recipe", "run_config", "seeds_of", "smoke_file"]

#: the chapters that train, in book order
TRAINING_CHAPTERS = ("03_source_backbone", "04_baseline", "05_improved", "06_optimisers", "07_normalisation")
#: chapter 3's backbone weights stay on the machine only for chapters 4 and 5
TRANSFER_CHAIN = ("03_source_backbone", "04_baseline", "05_improved")


def notebook(name: str) -> Path:
    """``<repo>/book/<name>.ipynb``."""
    return repo_root() / "book" / f"{name}.ipynb"


def smoke_file(name: str) -> Path:
    """``<repo>/book/params/<name>.smoke.yaml``: ``smoke: true`` and the chapter's reduced values."""
    return repo_root() / "book" / "params" / f"{name}.smoke.yaml"


def defaults(name: str) -> dict[str, Any]:
    """The defaults of chapter ``name``'s parameters cell, read by ``papermill.inspect_notebook``."""
    import papermill  # the book's extra: the command line's ``train`` runs without it

    return {key: ast.literal_eval(info["default"]) for key, info in papermill.inspect_notebook(str(notebook(name))).items()}


def read_files(files: Iterable[str | Path]) -> dict[str, Any]:
    """The values of YAML parameter files (as ``papermill -f`` reads them), later files winning."""
    values: dict[str, Any] = {}
    for file in files:
        if not Path(file).is_file():
            raise ValueError(f"parameter file {file} does not exist")
        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"parameter file {file} must hold a mapping of name: value")
        values.update(loaded)
    return values


def passed(name: str, *, smoke: bool = False, files: Sequence[str | Path] = (),
           declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What papermill passes chapter ``name``: ``smoke`` and its smoke file's values (a chapter with one), then the
    parameter files' values that the chapter declares. ``smoke`` is passed even when False: papermill replaces
    a committed page's injected cell only when it is passed something, and would otherwise run it again."""
    declared = defaults(name) if declared is None else declared
    out: dict[str, Any] = {}
    if smoke_file(name).is_file():
        out = {"smoke": smoke, **(read_files([smoke_file(name)]) if smoke else {})}
    return out | {k: v for k, v in read_files(files).items() if k in declared}


def chapter_params(name: str, *, smoke: bool = False, files: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Chapter ``name``'s parameters as the notebook will run with them: defaults, then :func:`passed`."""
    declared = defaults(name)
    return {**declared, **passed(name, smoke=smoke, files=files, declared=declared)}


def check_files(files: Sequence[str | Path]) -> None:
    """Refuse the parameter files' names that no notebook of the book declares (papermill would only warn)."""
    declared = set().union(*(defaults(p.stem) for p in sorted((repo_root() / "book").glob("*.ipynb"))))
    unknown = sorted(set(read_files(files)) - declared)
    if unknown:
        raise ValueError(f"{unknown} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of any "
                         f"chapter; parameters: {', '.join(sorted(declared))}")


def seeds_of(params: Mapping[str, Any]) -> list[int]:
    """The chapter's seeds: ``seeds``, else ``[seed]``, else ``[0]``."""
    return list(params.get("seeds", [params.get("seed", 0)]))


def run_config(params: Mapping[str, Any], changes: Mapping[str, Any], *, seed: int, out_dir: str = "runs",
               extra: Mapping[str, Any] | None = None) -> TrainConfig:
    """A run's config: the chapter parameters that are config fields, then ``changes``, ``seed`` and tags."""
    values = {k: v for k, v in params.items() if k in set(field_names())}
    values.update(out_dir=out_dir, progress=False, verbose=False)  # logs stay in the run folder
    values.update({k: v for k, v in changes.items() if k != "extra"}, seed=seed)
    return from_dict({**values, "extra": {**(extra or {}), **changes.get("extra", {})}})


#: Training recipes of chapters 6 and 7 (TrainConfig fields): both select the epoch on held-out training images
#: and evaluate the test split every epoch only to show what selecting on it (the sources' protocol) would report.
RECIPES: dict[str, dict[str, Any]] = {
    # source 001 as written: ImageNet stem, lr 1e-3 held constant, no augmentation, no regularisation
    "source": dict(stem_stride=4, lr=1e-3, schedule="constant", warmup_epochs=0.0, weight_decay=0.0,
                   crop_padding=0, hflip=False, randaugment=None, label_smoothing=0.0, drop_path_rate=0.0,
                   batch_size=64, test_every_epoch=True),
    # a recipe made for 32-pixel images: stride-2 stem, AdamW, warmup + cosine, augmentation, regularisation
    "small-image": dict(stem_stride=2, optimizer="adamw", lr=2e-3, schedule="cosine", warmup_epochs=5.0,
                        weight_decay=0.05, crop_padding=4, hflip=True, randaugment="n2m9", label_smoothing=0.1,
                        drop_path_rate=0.1, batch_size=128, test_every_epoch=True),
}


def recipe(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of ``RECIPES[name]`` with ``changes``, tagged ``extra={"recipe": name}``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return {**RECIPES[name], **changes, "extra": {"recipe": name}}


def grid(base: Mapping[str, Any], **axes: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Every combination of ``axes`` on top of ``base``: ``"a / b" -> {**base, axis: value, ...}``.

    >>> list(grid({}, model=["atto", "nano"], optimizer=["sgd"]))
    ['atto / sgd', 'nano / sgd']
    """
    return {" / ".join(map(str, values)): {**base, **dict(zip(axes, values))}
            for values in itertools.product(*axes.values())}


def baseline(source: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Chapter 4: source 000's baseline, a frozen backbone and a linear head, nothing random before it."""
    return {"baseline": dict(**source, freeze_backbone=True, head="linear", schedule="constant", warmup_epochs=0.0,
                             drop_path_rate=0.0, label_smoothing=0.0, crop_padding=0, hflip=False, randaugment=None,
                             test_every_epoch=True)}


def improved(source: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Chapter 5: source 000's improved recipe (the chapter's parameters hold its settings)."""
    return {"improved": dict(**source, freeze_backbone=False, head="attention", test_every_epoch=True)}


def ablations(recipe_changes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Chapter 5: the improved recipe with each ingredient removed, one at a time."""
    removed = {"− full fine-tuning (frozen backbone)": dict(freeze_backbone=True),
               "− attention head (linear head)": dict(head="linear"), "− RandAugment": dict(randaugment=None),
               "− dropout": dict(head_dropout=0.0), "− head weight decay (backbone's instead)": dict(head_weight_decay=None),
               "− differential LR (one lr for all)": dict(backbone_lr_scale=1.0), "− mixed precision": dict(amp=False)}
    return {label: {**recipe_changes, **change} for label, change in removed.items()}


def optimiser_grids(params: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Chapter 6: source-recipe runs (every optimiser on ``optimizer_model``, every model in ``variants`` with
    ``size_optimizer``) and small-image runs (if ``modern``: ``modern_variants``), ``dataset / model / optimizer``."""
    source, datasets = recipe("source", batch_size=params["batch_size"]), params["datasets"]
    modern = grid(recipe("small-image"), dataset=datasets, model=params["modern_variants"],
                  optimizer=["adamw"]) if params["modern"] else {}
    return {**grid(source, dataset=datasets, model=[params["optimizer_model"]], optimizer=params["optimizers"]),
            **grid(source, dataset=datasets, model=params["variants"], optimizer=[params["size_optimizer"]])}, modern


def normalisation_grids(params: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Chapter 7: recipe -> ``norm -> changes`` for ``model`` (recipe -> optimiser in ``recipes``)."""
    return {name: grid(recipe(name, model=params["model"], optimizer=optimizer,
                              **({"batch_size": params["batch_size"]} if name == "source" else {})), norm=params["norms"])
            for name, optimizer in params["recipes"].items()}


def _transfer_source(params: Mapping[str, Any], params3: Mapping[str, Any] | None) -> dict[str, Any]:
    """``backbones.transfer_source`` for chapters 4-5; before chapter 3 exported it, what ``params3`` will export."""
    smoke = bool(params.get("smoke"))
    try:
        return transfer_source(params.get("pretrained"), params["backbone"], smoke=smoke)
    except FileNotFoundError:
        if params.get("pretrained") is not None or params3 is None:
            raise
    meta = config_meta(run_config(params3, {}, seed=params3.get("seed", 0)))
    return exported_source(meta, backbone_path(params["backbone"], smoke=smoke))


def chapter_groups(name: str, params: Mapping[str, Any], *,
                   params3: Mapping[str, Any] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every group of runs chapter ``name`` sweeps with ``params``: group -> label -> config changes."""
    if name == "03_source_backbone":
        return {"pretrain": {"pretrain": {}}}
    if name == "04_baseline":
        return {"baseline": baseline(_transfer_source(params, params3))}
    if name == "05_improved":
        runs = improved(_transfer_source(params, params3))
        return {"improved": runs, **({"ablation": ablations(runs["improved"])} if params["ablation"] else {})}
    if name == "06_optimisers":
        source, modern = optimiser_grids(params)
        return {"source": source, "small-image": modern}
    return normalisation_grids(params) if name == "07_normalisation" else {}
