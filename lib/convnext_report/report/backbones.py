"""The transfer chapters' backbone: chapter 3 exports it, chapters 4 and 5 find it (or take a timm id).

The weights stay on the machine (``<runs>/backbones/<name>.pt``); its meta JSON (model, stem
stride, image size, normalisation statistics, and its identity: the store key of the chapter-3
run that trained it) is also kept in that run's store entry as ``backbone.json``, so chapters 4
and 5 can re-render their stored runs where the weights are not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import torch_save_atomic, write_text_atomic
from ..data.registry import IMAGENET_MEAN, IMAGENET_STD
from ..environment import now_iso
from ..parts import normalization
from . import store
from .keys import IDENTITY_TAG, run_key
from .paths import backbones_dir, display_path
from .tables import run_summary

__all__ = ["BACKBONE_FILE", "TIMM_TRANSFER_SOURCES", "backbone_meta", "backbone_path", "describe", "export_backbone",
           "find_backbone", "from_meta", "stored_backbone_meta", "transfer_source"]

#: the backbone's meta JSON inside chapter 3's store entry
BACKBONE_FILE = "backbone.json"


def backbone_path(name: str, *, smoke: bool = False) -> Path:
    """``<runs>/backbones/<name>[-smoke].pt``."""
    return backbones_dir() / f"{name}{'-smoke' if smoke else ''}.pt"


def _meta(run: Any, name: str, smoke: bool) -> dict[str, Any]:
    cfg = run.config
    mean, std = normalization(cfg)
    key = run_key(cfg)
    return {
        "name": name, "model": cfg.model, "stem_stride": cfg.stem_stride, "image_size": cfg.image_size,
        "norm": cfg.norm, "dataset": cfg.dataset, "mean": mean, "std": std,
        "epochs_run": run_summary(run)["epochs_run"], "test_top1": run_summary(run)["top1"],
        "configuration": "smoke" if smoke else "full", "store_key": key, "identity": f"run:{key}",
        "run": Path(run.path).name, "created_at": now_iso(),
    }


def export_backbone(run: Any, name: str, *, smoke: bool = False, checkpoint: str = "checkpoint_best.pt") -> Path | None:
    """Save a run's best weights as a backbone for the transfer chapters, with what built it.

    The file is a checkpoint dict ``{"model": state_dict, "meta": {...}}`` that
    :func:`convnext_report.models.load_pretrained` accepts; the meta JSON goes beside it and into the
    run's store entry. A stored run has no weights: then only the store gets the meta, and the
    result is None.
    """
    meta = _meta(run, name, smoke)
    entry = store.find(meta["store_key"], smoke=smoke)
    if entry is not None:
        store.attach(entry, BACKBONE_FILE, json.dumps(meta, indent=1) + "\n")
    source = Path(run.path) / checkpoint
    if not source.is_file():
        if entry is not None:
            return None
        raise FileNotFoundError(f"{source} does not exist; did the run finish an epoch?")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    path = backbone_path(name, smoke=smoke)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic({"model": state, "meta": meta}, path)
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return path


def _missing(path: Path, smoke: bool) -> FileNotFoundError:
    return FileNotFoundError(
        f"no pretrained backbone at {path}. Run chapter 03 first in the same configuration "
        f"({'smoke' if smoke else 'full'}), e.g. `papermill book/03_source_backbone.ipynb out.ipynb"
        f"{' -p smoke True' if smoke else ''}`, or pass `-p pretrained <checkpoint file or timm id>`."
    )


def find_backbone(name: str, *, smoke: bool = False) -> tuple[Path, dict[str, Any]]:
    """The backbone chapter 03 exported (path and its metadata), or a clear error saying what to do."""
    path = backbone_path(name, smoke=smoke)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise _missing(path, smoke)
    return path, json.loads(meta_path.read_text())


def stored_backbone_meta(name: str, *, smoke: bool = False) -> dict[str, Any] | None:
    """The meta of backbone ``name`` from chapter 3's store entries (the latest stored), or None."""
    found = []
    for entry in store.entries(smoke=smoke):
        file = entry.path / BACKBONE_FILE
        if file.is_file():
            meta = json.loads(file.read_text())
            if meta.get("name") == name:
                found.append((str(entry.meta.get("stored_at", "")), meta))
    return max(found, key=lambda item: item[0])[1] if found else None


def backbone_meta(name: str, *, smoke: bool = False) -> dict[str, Any]:
    """The backbone's meta: beside its weights here, else from the store (weights on another machine)."""
    try:
        return find_backbone(name, smoke=smoke)[1]
    except FileNotFoundError:
        meta = stored_backbone_meta(name, smoke=smoke)
        if meta is None:
            raise
        return meta


#: what the source used: timm id -> (model, stem stride, image size) for the transfer chapters
TIMM_TRANSFER_SOURCES = {"convnext_tiny.fb_in1k": ("convnext_tiny", 4, 224)}


def from_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields of a backbone's meta: its model, stem, input size, norm and input statistics."""
    out = {k: meta[k] for k in ("model", "stem_stride", "image_size", "norm") if k in meta}
    if meta.get("mean") and meta.get("std"):  # inputs normalised as the backbone saw them in pretraining
        out.update(normalize_mean=list(meta["mean"]), normalize_std=list(meta["std"]))
    return out


def describe(source: dict[str, Any]) -> dict[str, Any]:
    """``source`` (from :func:`transfer_source`) as a page shows it: no absolute paths, short identities."""
    shown = {k: v for k, v in source.items() if k != "extra"}
    if shown.get("pretrained") and Path(shown["pretrained"]).suffix:
        shown["pretrained"] = display_path(shown["pretrained"])
    identity = (source.get("extra") or {}).get(IDENTITY_TAG)
    if identity:
        shown["identity"] = identity[:16] + ("…" if len(identity) > 16 else "")
    return shown


def transfer_source(pretrained: str | None, backbone: str, *, smoke: bool = False) -> dict[str, Any]:
    """TrainConfig fields for the transfer chapters' backbone.

    ``pretrained=None``: the backbone chapter 03 exported under ``backbone`` (its meta from the
    store when the weights are not on this machine; the ``extra`` tag names its identity). A timm
    id from :data:`TIMM_TRANSFER_SOURCES` (needs network): the source's ImageNet weights at its
    resolution. A file: used as is, with the model and stem read from its ``meta`` when present.
    """
    if pretrained is None:
        meta = backbone_meta(backbone, smoke=smoke)
        out = {"norm": "layernorm", **from_meta(meta), "pretrained": str(backbone_path(backbone, smoke=smoke))}
        if meta.get("store_key"):
            out["extra"] = {IDENTITY_TAG: f"run:{meta['store_key']}"}
        return out
    if pretrained in TIMM_TRANSFER_SOURCES:
        model, stride, size = TIMM_TRANSFER_SOURCES[pretrained]
        return dict(model=model, stem_stride=stride, image_size=size, pretrained=pretrained,
                    normalize_mean=list(IMAGENET_MEAN), normalize_std=list(IMAGENET_STD))
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained={pretrained!r} is neither a file nor a known timm id "
                                f"({', '.join(TIMM_TRANSFER_SOURCES)})")
    meta = path.with_suffix(".json")
    info = json.loads(meta.read_text()) if meta.is_file() else {}
    return dict(pretrained=str(path), **from_meta(info))
