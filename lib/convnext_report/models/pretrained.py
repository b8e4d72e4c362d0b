"""Pretrained ConvNeXt weights through timm, with a strict report of what was loaded.

* A timm id (``convnext_tiny.fb_in1k``) is built by ``timm.create_model(id, pretrained=True)``,
  which downloads the weights from the Hugging Face hub (or reads its local cache) and loads all
  but the classifier.
* A local file (a ``.pt``/``.pth`` state dict, a run checkpoint ``{"model": ...}`` or
  ``.safetensors``) is read by timm's ``load_state_dict`` with ``weights_only=True``: a file that
  holds pickled Python objects is refused, never unpickled. A file that cannot be read is reported
  with its real cause (:func:`unreadable_reason`: empty, truncated, not a torch file, not a state dict).

Ours is only :func:`load_state_dict_into`: head weights of another shape are skipped, every
backbone weight must load (else the mismatched keys are listed in the error), and a stem kernel
of another size (``stem_stride`` differs from the checkpoint) is resampled with timm's
``resample_patch_embed``; the report says which keys were loaded, skipped and resampled.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from timm.layers import resample_patch_embed
from timm.models import get_pretrained_cfg, load_state_dict
from timm.models.convnext import checkpoint_filter_fn
from torch import nn

from ..errors import UserError

__all__ = [
    "CheckpointMismatchError", "HEAD_PREFIX", "PretrainedWeightsUnavailable", "STEM_WEIGHT",
    "UnreadableCheckpointError", "create_timm_model", "hub_report", "is_hub_id", "load_pretrained", "load_record",
    "load_state_dict_into", "read_checkpoint", "unreadable_reason",
]

_logger = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
STEM_WEIGHT = "stem.0.weight"
HEAD_PREFIX = "head."
#: what a download can raise when the hub is offline, unreachable or refuses
_NETWORK_ERRORS = (OSError, ConnectionError, TimeoutError, LocalEntryNotFoundError, HfHubHTTPError)


class PretrainedWeightsUnavailable(UserError, RuntimeError):
    """Hub weights cannot be fetched (offline, not cached, unreachable)."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint's backbone does not fit the model."""


class UnreadableCheckpointError(UserError, ValueError):
    """A checkpoint file cannot be read (the message says why), or holds pickled Python objects and was refused."""


def is_hub_id(source: str | os.PathLike) -> bool:
    """False for an existing file or anything that looks like a checkpoint path; else a timm id."""
    s = os.fspath(source)
    return not (Path(s).exists() or s.endswith(LOCAL_SUFFIXES) or os.sep in s)


def _check_hub_id(model_id: str, arch: str | None = None) -> None:
    """Raise ``ValueError`` unless ``model_id`` is a timm pretrained id (of ``arch``, when given)."""
    try:
        cfg = get_pretrained_cfg(model_id, allow_unregistered=False)
    except RuntimeError:
        cfg = None
    if cfg is None:
        known = timm.list_pretrained(f"{model_id.split('.')[0]}.*") or timm.list_pretrained("convnext*")
        raise ValueError(f"pretrained={model_id!r} is neither an existing file nor a timm pretrained id; "
                         f"valid ids include: {', '.join(known[:20])}")
    if arch is not None and model_id.split(".")[0] != arch:
        raise ValueError(f"pretrained={model_id!r} holds weights of {model_id.split('.')[0]}, not of model {arch!r}")


def create_timm_model(arch: str, hub_id: str | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(arch)``; with ``hub_id``, the weights of that timm id (all but the classifier
    when ``num_classes`` differs). Offline without a cached copy: :class:`PretrainedWeightsUnavailable`."""
    if hub_id is None:
        return timm.create_model(arch, pretrained=False, **kwargs)
    _check_hub_id(hub_id, arch)
    try:
        return timm.create_model(hub_id, pretrained=True, **kwargs)
    except _NETWORK_ERRORS as err:
        repo = get_pretrained_cfg(hub_id).hf_hub_id or f"timm/{hub_id}"
        raise PretrainedWeightsUnavailable(
            f"pretrained weights {hub_id!r} are not available: the Hugging Face hub is offline "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}) or unreachable, and "
            f"{repo} is not in the local cache ({hf_constants.HF_HUB_CACHE}). To use them, download "
            f"`model.safetensors` from https://huggingface.co/{repo} on a machine with network "
            f"access, copy it here and pass its path: pretrained='/path/to/model.safetensors' "
            f"(or `pretrained=/path/to/model.safetensors` in the run config). "
            f"Original error: {type(err).__name__}: {err}"
        ) from err


def hub_report(model: nn.Module, hub_id: str) -> dict[str, Any]:
    """The load report of a model that ``create_timm_model`` built with ``hub_id``'s weights."""
    own = list(model.state_dict())
    head_fc = [k for k in own if k.startswith(HEAD_PREFIX + "fc.")]
    return {"source": f"timm:{hub_id}", "loaded": sorted(k for k in own if k not in head_fc), "missing": head_fc,
            "skipped": [], "unexpected": [], "mismatched": [], "resampled": [], "notes": []}


def read_checkpoint(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """``(state_dict, description)`` for a local file or a timm pretrained id."""
    if is_hub_id(source):
        model = create_timm_model(str(source).split(".")[0], str(source), num_classes=0)
        return model.state_dict(), f"timm:{source}"
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist")
    try:
        state = load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as err:
        raise UnreadableCheckpointError(f"pretrained={path} cannot be loaded: {unreadable_reason(path, err)}") from err
    if not isinstance(state, Mapping) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnreadableCheckpointError(f"pretrained={path} cannot be loaded: {_NOT_A_STATE_DICT}")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, str(path)


_NOT_A_STATE_DICT = ("it does not hold a model state dict (a mapping of parameter names to tensors, or a dict with "
                     "one under 'model' or 'state_dict')")


def unreadable_reason(path: Path, err: BaseException) -> str:
    """Why ``path`` could not be read as a checkpoint (``err``: what the reader raised), and what to do."""
    size = path.stat().st_size if path.is_file() else 0
    with path.open("rb") as f:
        head = f.read(4)
    detail = " ".join(str(err).split())[:300]
    if size == 0:
        return "the file is empty (0 bytes): copy it again"
    if path.suffix == ".safetensors":
        return f"it is not a valid safetensors file ({detail}): copy it again"
    torch_archive, pickle = head.startswith(b"PK"), head.startswith(b"\x80")  # torch's zip, or its legacy pickle
    if torch_archive and not zipfile.is_zipfile(path) or pickle and isinstance(err, EOFError):
        return (f"it is truncated ({size:,} bytes, the end of the file is missing, as when a copy or download "
                "stops early): copy it again")
    if not (torch_archive or pickle):
        return f"it is not a torch or safetensors checkpoint (the file starts with {head!r})"
    if "Unsupported global" in str(err):
        return ("it holds pickled Python objects besides tensors, and loading it could run arbitrary code, so it was "
                "refused. If you trust it, re-save its weights alone: torch.save(torch.load(path, weights_only=False)"
                "['model'], 'weights.pt') on a machine where you accept that risk, or pass a .safetensors file "
                f"({detail})")
    if isinstance(err, (AttributeError, KeyError, TypeError)):
        return f"{_NOT_A_STATE_DICT} ({type(err).__name__}: {detail})"
    return f"torch cannot read it ({type(err).__name__}: {detail})"


def _to_timm_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Remap original facebookresearch checkpoints (``downsample_layers.*``) to timm names."""
    if any(k.startswith(("downsample_layers.", "visual.trunk.")) for k in state):
        return checkpoint_filter_fn(state, model)
    return state


def _fmt(keys: list[str], limit: int = 25) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    strict_backbone: bool = True,
    source: str = "state_dict",
) -> dict[str, Any]:
    """Copy ``state_dict`` into ``model``; see :func:`load_pretrained` for the rules and report."""
    state = _to_timm_keys(dict(state_dict), model)
    own = model.state_dict()
    load: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    unexpected: list[str] = []
    mismatched: list[str] = []
    resampled: list[str] = []
    notes: list[str] = []
    for key, value in state.items():
        is_head = key.startswith(HEAD_PREFIX)
        if key not in own:
            (skipped if is_head else unexpected).append(key)
            continue
        target = own[key].shape
        if value.shape == target:
            load[key] = value
        elif key == STEM_WEIGHT and value.ndim == 4 and value.shape[:2] == target[:2]:
            load[key] = resample_patch_embed(value.float(), list(target[-2:])).to(value.dtype)
            msg = (f"{key}: stem kernel resampled {tuple(value.shape[-2:])} -> {tuple(target[-2:])} "
                   f"(stem stride differs from the checkpoint)")
            resampled.append(msg)
            notes.append(msg)
        elif is_head:
            skipped.append(key)
        else:
            mismatched.append(f"{key} {tuple(value.shape)} vs model {tuple(target)}")
    missing = [k for k in own if k not in load]
    missing_backbone = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if strict_backbone and (unexpected or mismatched or missing_backbone):
        parts = []
        if mismatched:
            parts.append(f"shape mismatch: {_fmt(mismatched)}")
        if missing_backbone:
            parts.append(f"missing from the checkpoint: {_fmt(missing_backbone)}")
        if unexpected:
            parts.append(f"not in the model: {_fmt(unexpected)}")
        hint = ""
        if any(k.endswith(".alpha") for k in unexpected + missing_backbone):
            hint = " (one side uses DyT: build with the same norm= as the checkpoint)"
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit the model backbone{hint}; {'; '.join(parts)}. "
            f"Check the model name / norm of the checkpoint, or pass strict_backbone=False."
        )
    model.load_state_dict(load, strict=False)
    if skipped:
        notes.append(f"head weights not loaded (shape or head differs): {_fmt(skipped)}")
    report = {
        "source": source,
        "loaded": sorted(load),
        "missing": missing,
        "skipped": skipped,
        "unexpected": unexpected,
        "mismatched": mismatched,
        "resampled": resampled,
        "notes": notes,
    }
    _logger.info("loaded %d tensors from %s (%d left initialised, %d skipped)%s", len(load), source,
                 len(missing), len(skipped), "; " + "; ".join(resampled) if resampled else "")
    return report


def load_record(report: Mapping[str, Any]) -> dict[str, Any]:
    """What ``record.json`` keeps of a load report: the source, how many tensors loaded, and by name what
    was not simply loaded (left at its fresh initialisation, skipped, resampled) and the notes."""
    return {"source": report["source"], "loaded": len(report["loaded"]), "reinitialised": list(report["missing"]),
            "skipped": list(report["skipped"]), "resampled": list(report["resampled"]), "notes": list(report["notes"])}


def load_pretrained(model: nn.Module, source: str | os.PathLike, *, strict_backbone: bool = True) -> dict[str, Any]:
    """Load weights from a timm id (``convnext_tiny.fb_in1k``) or a local file into ``model``.

    Local files: a ``.pt``/``.pth`` state dict, a run checkpoint ``{"model": state_dict, ...}``
    or ``.safetensors``. Head (``head.*``) weights of another shape are skipped; any backbone
    key that is missing, unexpected or of another shape raises :class:`CheckpointMismatchError`
    (unless ``strict_backbone=False``). Returns a report dict with ``source``, ``loaded``,
    ``missing`` (left initialised), ``skipped``, ``unexpected``, ``mismatched``, ``resampled``
    and ``notes``. Offline without a cached copy: :class:`PretrainedWeightsUnavailable`.
    """
    state, origin = read_checkpoint(source)
    return load_state_dict_into(model, state, strict_backbone=strict_backbone, source=origin)
