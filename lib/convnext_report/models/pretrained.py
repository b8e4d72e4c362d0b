"""Load pretrained ConvNeXt weights from the timm/Hugging Face hub or from a local checkpoint.

Head weights whose shape does not fit (another ``num_classes``, another head) are skipped;
every backbone weight must load, otherwise the mismatched keys are listed in the error. A stem
kernel of another size (``stem_stride`` differs from the checkpoint) is resampled with timm's
``resample_patch_embed`` and the report says so.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

_logger = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
STEM_WEIGHT = "stem.0.weight"
HEAD_PREFIX = "head."
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_ema")
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


class PretrainedWeightsUnavailable(RuntimeError):
    """Hub weights cannot be fetched (offline, not cached, unreachable)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's backbone does not fit the model."""


def is_local_source(source: str | os.PathLike) -> bool:
    """True for an existing file or anything that looks like a checkpoint path."""
    s = os.fspath(source)
    return Path(s).exists() or s.endswith(LOCAL_SUFFIXES) or os.sep in s


def _unwrap(obj: Any, origin: str) -> dict[str, torch.Tensor]:
    """The model state dict inside a plain, run-checkpoint or wrapper dict."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # run checkpoint that also stores tensors at the top level
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{origin} does not hold a model state dict (or a dict with one under 'model')")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _read_local(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # our own run checkpoints may pickle plain Python objects; local files are trusted
        _logger.warning("%s is not weights_only-loadable; loading it with full unpickling", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    return _unwrap(obj, str(path))


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError]
    try:
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        errors += [EntryNotFoundError, HfHubHTTPError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _download_hf(repo_id: str, filename: str | None) -> dict[str, torch.Tensor]:
    """``model.safetensors`` of a timm hub repo (one attempt, so offline fails fast);
    timm's loader only when the repo has no safetensors file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    from safetensors.torch import load_file
    from timm.models import load_state_dict_from_hf

    if filename is None or filename.endswith(".safetensors"):
        try:
            return load_file(hf_hub_download(repo_id, filename or "model.safetensors"), device="cpu")
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError:  # the hub answered: no safetensors file in this repo
            if filename is not None:
                raise
    return load_state_dict_from_hf(repo_id, filename=filename or "pytorch_model.bin")


def _read_hub(model_id: str) -> dict[str, torch.Tensor]:
    """Weights of a timm pretrained id (``arch.tag``) from the HF hub or its local cache."""
    import timm
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model_id, allow_unregistered=False)
    except RuntimeError:
        cfg = None
    if cfg is None:
        arch = model_id.split(".")[0]
        known = timm.list_pretrained(f"{arch}.*") or timm.list_pretrained("convnext*")
        raise ValueError(
            f"pretrained={model_id!r} is neither an existing file nor a timm pretrained id; "
            f"valid ids include: {', '.join(known[:20])}"
        )
    try:
        if cfg.hf_hub_id:
            state = _download_hf(cfg.hf_hub_id, cfg.hf_hub_filename)
        elif cfg.url:
            state = torch.hub.load_state_dict_from_url(cfg.url, map_location="cpu", check_hash=False)
        else:
            raise PretrainedWeightsUnavailable(f"timm has no download location for {model_id!r}")
    except _network_errors() as err:
        repo = cfg.hf_hub_id or f"timm/{model_id}"
        from huggingface_hub import constants

        raise PretrainedWeightsUnavailable(
            f"pretrained weights {model_id!r} are not available: the Hugging Face hub is offline "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}) or unreachable, and "
            f"{repo} is not in the local cache ({constants.HF_HUB_CACHE}). To use them, download "
            f"`model.safetensors` from https://huggingface.co/{repo} on a machine with network "
            f"access, copy it here and pass its path: pretrained='/path/to/model.safetensors' "
            f"(or `pretrained=/path/to/model.safetensors` in the run config). "
            f"Original error: {type(err).__name__}: {err}"
        ) from err
    return _unwrap(state, model_id)


def read_checkpoint(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """``(state_dict, description)`` for a local file or a timm pretrained id."""
    if is_local_source(source):
        path = Path(source).expanduser()
        return _read_local(path), str(path)
    return _read_hub(str(source)), f"timm:{source}"


def _to_timm_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Remap original facebookresearch checkpoints (``downsample_layers.*``) to timm names."""
    if any(k.startswith(("downsample_layers.", "visual.trunk.")) for k in state):
        from timm.models.convnext import checkpoint_filter_fn

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
            from timm.layers import resample_patch_embed

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
