"""Each training chapter's runs as data: labels -> config changes, as functions of its parameters.

The notebooks sweep these (``ch.sweep(experiments.baseline(source))``) and the plan (:mod:`.plan`) builds
them from the same parameters, so both see the same runs (the same store keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import TrainConfig, field_names, from_dict
from ..parts import normalization
from .backbones import backbone_path, transfer_source
from .recipes import grid, recipe
from .store import IDENTITY_TAG, run_key

__all__ = ["TRAINING_CHAPTERS", "TRANSFER_CHAIN", "ablations", "baseline", "chapter_groups",
           "improved", "normalisation_grids", "optimiser_grids", "run_config", "seeds_of"]

#: the chapters that train, in book order
TRAINING_CHAPTERS = ("03_source_backbone", "04_baseline", "05_improved", "06_optimisers", "07_normalisation")
#: chapter 3's backbone weights stay on the machine only for chapters 4 and 5
TRANSFER_CHAIN = ("03_source_backbone", "04_baseline", "05_improved")


def seeds_of(params: Mapping[str, Any]) -> list[int]:
    """The chapter's seeds: ``seeds``, else ``[seed]``, else ``[0]``."""
    return list(params.get("seeds", [params.get("seed", 0)]))


def run_config(params: Mapping[str, Any], changes: Mapping[str, Any], *, seed: int, out_dir: str = "runs",
               extra: Mapping[str, Any] | None = None) -> TrainConfig:
    """A run's config: the chapter parameters that are config fields, then ``changes``, ``seed`` and tags."""
    fields = set(field_names())
    values = {k: v for k, v in params.items() if k in fields}
    values.update(out_dir=out_dir, progress=False, verbose=False)  # logs stay in the run folder
    values.update({k: v for k, v in changes.items() if k != "extra"})
    values["seed"] = seed
    values["extra"] = {**(extra or {}), **changes.get("extra", {})}
    return from_dict(values)


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
    base = dict(recipe_changes)
    return {
        "− full fine-tuning (frozen backbone)": dict(base, freeze_backbone=True),
        "− attention head (linear head)": dict(base, head="linear"),
        "− RandAugment": dict(base, randaugment=None),
        "− dropout": dict(base, head_dropout=0.0),
        "− head weight decay (backbone's instead)": dict(base, head_weight_decay=None),
        "− differential LR (one lr for all)": dict(base, backbone_lr_scale=1.0),
        "− mixed precision": dict(base, amp=False),
    }


def optimiser_grids(params: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Chapter 6: (source recipe, small-image recipe) runs, ``"<dataset> / <model> / <optimizer>"`` each.

    Source recipe: every optimiser on ``optimizer_model`` and every model in ``variants`` with
    ``size_optimizer``; small-image recipe (if ``modern``): every model in ``modern_variants``.
    """
    datasets = params["datasets"]
    source = {**grid(recipe("source", batch_size=params["batch_size"]), dataset=datasets,
                     model=[params["optimizer_model"]], optimizer=params["optimizers"]),
              **grid(recipe("source", batch_size=params["batch_size"]), dataset=datasets,
                     model=params["variants"], optimizer=[params["size_optimizer"]])}
    modern = grid(recipe("small-image"), dataset=datasets, model=params["modern_variants"],
                  optimizer=["adamw"]) if params["modern"] else {}
    return source, modern


def normalisation_grids(params: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Chapter 7: recipe -> ``norm -> changes`` for ``model`` (recipe -> optimiser in ``recipes``)."""
    out = {}
    for name, optimizer in params["recipes"].items():
        changes = dict(model=params["model"], optimizer=optimizer)
        if name == "source":
            changes["batch_size"] = params["batch_size"]
        out[name] = grid(recipe(name, **changes), norm=params["norms"])
    return out


def _transfer_source(params: Mapping[str, Any], params3: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``backbones.transfer_source`` gives chapters 4-5, as the chapter reads it; before chapter 3 has
    exported its backbone, what it will export with parameters ``params3`` (identity: its run's key)."""
    smoke = bool(params.get("smoke"))
    try:
        return transfer_source(params.get("pretrained"), params["backbone"], smoke=smoke)
    except FileNotFoundError:
        if params.get("pretrained") is not None or params3 is None:
            raise
    config = run_config(params3, {}, seed=params3.get("seed", 0))
    mean, std = normalization(config)
    return dict(norm=config.norm, model=config.model, stem_stride=config.stem_stride, image_size=config.image_size,
                normalize_mean=mean, normalize_std=std, pretrained=str(backbone_path(params["backbone"], smoke=smoke)),
                extra={IDENTITY_TAG: f"run:{run_key(config)}"})


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
    if name == "07_normalisation":
        return normalisation_grids(params)
    return {}
