"""The transfer chapters' backbone: chapter 3 exports it (weights in ``<runs>/backbones``, meta also in its run's
store entry, so 4 and 5 re-render without the weights), chapters 4 and 5 find it (or take a timm id)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import torch_save_atomic, write_text_atomic
from ..data.registry import IMAGENET_MEAN, IMAGENET_STD
from ..environment import now_iso
from ..parts import normalization
from ..runfolder import CHECKPOINT_BEST
from ..summary import run_summary
from . import store

__all__ = ["BACKBONE_FILE", "TIMM_TRANSFER_SOURCES", "backbone_meta", "backbone_path", "config_meta", "describe",
           "export_backbone", "exported_source", "transfer_source"]

#: the backbone's meta JSON inside chapter 3's store entry
BACKBONE_FILE = "backbone.json"
#: what the source used: timm id -> (model, stem stride, image size) for the transfer chapters
TIMM_TRANSFER_SOURCES = {"convnext_tiny.fb_in1k": ("convnext_tiny", 4, 224)}


def backbone_path(name: str, *, smoke: bool = False) -> Path:
    """``<runs>/backbones/<name>[-smoke].pt``."""
    return store.local_dir("backbones") / f"{name}{'-smoke' if smoke else ''}.pt"


def config_meta(config: Any) -> dict[str, Any]:
    """What a backbone trained with ``config`` is: model, stem, input, norm, statistics, its run's key."""
    mean, std = normalization(config)
    key = store.run_key(config)
    return {"model": config.model, "stem_stride": config.stem_stride, "image_size": config.image_size,
            "norm": config.norm, "dataset": config.dataset, "mean": mean, "std": std, "store_key": key,
            "identity": f"run:{key}"}


def export_backbone(run: Any, name: str, *, smoke: bool = False) -> Path | None:
    """Save a run's best weights (``{"model": ..., "meta": ...}``) as the backbone ``name``, its meta beside
    them and in the run's store entry; a stored run has no weights: then only the meta, and None."""
    summary = run_summary(run)
    meta = {"name": name, **config_meta(run.config), "epochs_run": summary["epochs_run"],
            "test_top1": summary["top1"], "configuration": "smoke" if smoke else "full",
            "run": Path(run.path).name, "created_at": now_iso()}
    text = json.dumps(meta, indent=1) + "\n"
    entry = store.find(meta["store_key"], smoke=smoke)
    if entry is not None:
        store.attach(entry, BACKBONE_FILE, text)
    source = Path(run.path) / CHECKPOINT_BEST
    if not source.is_file():
        if entry is not None:
            return None
        raise FileNotFoundError(f"{source} does not exist; did the run finish an epoch?")
    state = torch.load(source, map_location="cpu", weights_only=True)
    path = backbone_path(name, smoke=smoke)
    torch_save_atomic({"model": state.get("model", state), "meta": meta}, path)
    write_text_atomic(path.with_suffix(".json"), text)
    return path


def backbone_meta(name: str, *, smoke: bool = False) -> dict[str, Any]:
    """The backbone's meta: beside its weights here, else the latest in chapter 3's store entries."""
    beside = backbone_path(name, smoke=smoke).with_suffix(".json")
    if beside.is_file() and backbone_path(name, smoke=smoke).is_file():
        return json.loads(beside.read_text())
    files = [(e.meta.get("stored_at", ""), e.path / BACKBONE_FILE) for e in store.entries(smoke=smoke)]
    stored = [(at, meta) for at, f in files if f.is_file() and (meta := json.loads(f.read_text())).get("name") == name]
    if not stored:
        raise FileNotFoundError(
            f"no backbone {name!r} at {backbone_path(name, smoke=smoke)} nor in the result store. Execute chapter "
            f"03 first in the same configuration ({'smoke' if smoke else 'full'}), e.g. `papermill "
            f"book/03_source_backbone.ipynb out.ipynb{' -f book/params/03_source_backbone.smoke.yaml' * smoke}`, "
            "or pass `-p pretrained <checkpoint file or timm id>`.")
    return max(stored, key=lambda pair: pair[0])[1]


def _fields(meta: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields of a backbone's meta: its model, stem, input size, norm and input statistics."""
    out = {k: meta[k] for k in ("model", "stem_stride", "image_size", "norm") if k in meta}
    if meta.get("mean") and meta.get("std"):  # inputs normalised as the backbone saw them in pretraining
        out.update(normalize_mean=list(meta["mean"]), normalize_std=list(meta["std"]))
    return out


def exported_source(meta: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """TrainConfig fields of chapter 3's backbone (``meta``, weights at ``path``), its identity in ``extra``."""
    return {"norm": "layernorm", **_fields(meta), "pretrained": str(path),
            "extra": {store.IDENTITY_TAG: f"run:{meta['store_key']}"}}


def describe(source: dict[str, Any]) -> dict[str, Any]:
    """``source`` (from :func:`transfer_source`) as a page shows it: no absolute paths, short identities."""
    shown = {k: v for k, v in source.items() if k != "extra"}
    if shown.get("pretrained") and Path(shown["pretrained"]).suffix:
        shown["pretrained"] = store.display_path(shown["pretrained"])
    identity = (source.get("extra") or {}).get(store.IDENTITY_TAG)
    if identity:
        shown["identity"] = identity[:16] + ("…" if len(identity) > 16 else "")
    return shown


def transfer_source(pretrained: str | None, backbone: str, *, smoke: bool = False) -> dict[str, Any]:
    """TrainConfig fields of the transfer chapters' backbone: ``pretrained=None``: the one chapter 3 exported
    as ``backbone`` (identity in ``extra``); a timm id of :data:`TIMM_TRANSFER_SOURCES` (network); a file."""
    if pretrained is None:
        return exported_source(backbone_meta(backbone, smoke=smoke), backbone_path(backbone, smoke=smoke))
    if pretrained in TIMM_TRANSFER_SOURCES:
        model, stride, size = TIMM_TRANSFER_SOURCES[pretrained]
        return dict(model=model, stem_stride=stride, image_size=size, pretrained=pretrained,
                    normalize_mean=list(IMAGENET_MEAN), normalize_std=list(IMAGENET_STD))
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained={pretrained!r} is neither a file nor a known timm id "
                                f"({', '.join(TIMM_TRANSFER_SOURCES)})")
    meta = path.with_suffix(".json")
    return dict(pretrained=str(path), **_fields(json.loads(meta.read_text()) if meta.is_file() else {}))
