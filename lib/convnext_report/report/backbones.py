"""The transfer chapters' backbone: chapter 3 exports it, chapters 4 and 5 find it (or take a timm id)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import torch_save_atomic, write_text_atomic
from ..environment import now_iso
from .paths import backbones_dir
from .tables import run_summary

__all__ = ["TIMM_TRANSFER_SOURCES", "backbone_path", "export_backbone", "find_backbone", "transfer_source"]


def backbone_path(name: str, *, smoke: bool = False) -> Path:
    """``<runs>/backbones/<name>[-smoke].pt``."""
    return backbones_dir() / f"{name}{'-smoke' if smoke else ''}.pt"


def export_backbone(run: Any, name: str, *, smoke: bool = False, checkpoint: str = "checkpoint_best.pt") -> Path:
    """Save a run's best weights as a backbone for the transfer chapters, with what built it.

    The file is a checkpoint dict ``{"model": state_dict, "meta": {...}}`` that
    :func:`convnext_report.models.load_pretrained` accepts.
    """
    source = Path(run.path) / checkpoint
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; did the run finish an epoch?")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    cfg = run.config
    summary = run_summary(run)
    meta = {
        "name": name,
        "model": cfg.model,
        "stem_stride": cfg.stem_stride,
        "image_size": cfg.image_size,
        "norm": cfg.norm,
        "dataset": cfg.dataset,
        "epochs_run": summary["epochs_run"],
        "val_top1": summary["best_val_acc"],
        "configuration": "smoke" if smoke else "full",
        "run": str(run.path),
        "created_at": now_iso(),
    }
    path = backbone_path(name, smoke=smoke)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic({"model": state, "meta": meta}, path)
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return path


def find_backbone(name: str, *, smoke: bool = False) -> tuple[Path, dict[str, Any]]:
    """The backbone chapter 03 exported (path and its metadata), or a clear error saying what to do."""
    path = backbone_path(name, smoke=smoke)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(
            f"no pretrained backbone at {path}. Run chapter 03 first in the same configuration "
            f"({'smoke' if smoke else 'full'}), e.g. `papermill book/03_source_backbone.ipynb out.ipynb"
            f"{' -p smoke True' if smoke else ''}`, or pass `-p pretrained <checkpoint file or timm id>`."
        )
    return path, json.loads(meta_path.read_text())


#: what the source used: timm id -> (model, stem stride, image size) for the transfer chapters
TIMM_TRANSFER_SOURCES = {"convnext_tiny.fb_in1k": ("convnext_tiny", 4, 224)}


def transfer_source(pretrained: str | None, backbone: str, *, smoke: bool = False) -> dict[str, Any]:
    """TrainConfig fields for the transfer chapters' backbone.

    ``pretrained=None``: the backbone chapter 03 exported under ``backbone``. A timm id from
    :data:`TIMM_TRANSFER_SOURCES` (needs network): the source's ImageNet weights at its resolution.
    A file: used as is, with the model and stem read from its ``meta`` when present.
    """
    if pretrained is None:
        path, meta = find_backbone(backbone, smoke=smoke)
        return dict(model=meta["model"], stem_stride=meta["stem_stride"], image_size=meta["image_size"],
                    norm=meta.get("norm", "layernorm"), pretrained=str(path))
    if pretrained in TIMM_TRANSFER_SOURCES:
        model, stride, size = TIMM_TRANSFER_SOURCES[pretrained]
        return dict(model=model, stem_stride=stride, image_size=size, pretrained=pretrained)
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained={pretrained!r} is neither a file nor a known timm id "
                                f"({', '.join(TIMM_TRANSFER_SOURCES)})")
    meta = path.with_suffix(".json")
    info = json.loads(meta.read_text()) if meta.is_file() else {}
    out = dict(pretrained=str(path))
    out.update({k: info[k] for k in ("model", "stem_stride", "image_size", "norm") if k in info})
    return out
