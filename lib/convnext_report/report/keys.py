"""A run's store key: what it computes, the same on the GPU machine and here.

The key is the sha256 of the config fields that change what a run computes (runtime keys such as
the device, folders and progress bars are left out), of :data:`STORE_VERSION`, and of the
*identity* of ``pretrained`` instead of its path: a timm id stays itself, a backbone exported by
chapter 3 is the store key of the chapter-3 run that trained it (its meta JSON says so, or the
``pretrained_identity`` tag the transfer chapters put in ``extra``), any other file its sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import inactive_keys
from ..runfolder import RUNTIME_KEYS as RESUME_RUNTIME_KEYS

__all__ = ["IDENTITY_TAG", "RUNTIME_KEYS", "STORE_VERSION", "WEIGHT_SUFFIXES", "entry_name", "key_fields",
           "pretrained_identity", "run_key", "safe_label"]

#: Bump when a code change changes what runs compute: every run then gets a new key and is trained again
#: (2: history.csv and record.json name the selection split selection_* and count epochs from 1).
STORE_VERSION = 2

#: config keys that do not change what a run computes (left out of the key): the ones a resumed run
#: takes from the caller (device, folders, progress, compile, ...) and the free-form tags in ``extra``
RUNTIME_KEYS = frozenset(RESUME_RUNTIME_KEYS) | {"extra"}

#: the ``extra`` tag naming the identity of ``pretrained`` (set by ``backbones.transfer_source``)
IDENTITY_TAG = "pretrained_identity"

#: files that hold weights: never part of the store, never a timm id
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt", ".bin")


def pretrained_identity(config: Any) -> str | None:
    """``None``, ``"timm:<id>"``, ``"run:<store key>"`` (chapter 3's backbone) or ``"sha256:<hex>"``."""
    tag = (getattr(config, "extra", None) or {}).get(IDENTITY_TAG)
    if tag:
        return str(tag)
    value = getattr(config, "pretrained", None)
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        meta = path.with_suffix(".json")
        key = _meta_key(meta) if meta.is_file() else None
        return f"run:{key}" if key else f"sha256:{_file_sha256(str(path), path.stat().st_mtime_ns, path.stat().st_size)}"
    if path.suffix in WEIGHT_SUFFIXES or ("/" in value and not value.startswith("hf-hub:")):
        raise FileNotFoundError(f"pretrained={value!r} is not a file, so the run cannot be identified; "
                                "pass an existing checkpoint or a timm id")
    return f"timm:{value}"


def key_fields(config: Any) -> dict[str, Any]:
    """What the key hashes: the version, every config field that is neither a runtime key nor inactive
    (:func:`convnext_report.config.inactive_keys`), ``pretrained`` as its identity."""
    skip = RUNTIME_KEYS | inactive_keys(config)
    values = {k: v for k, v in config.to_dict().items() if k not in skip}
    values["pretrained"] = pretrained_identity(config)
    return {"store_version": STORE_VERSION, "config": values}


def run_key(config: Any) -> str:
    """The store key of ``config``: 64 hex digits."""
    text = json.dumps(key_fields(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def safe_label(label: str) -> str:
    """A label as a folder-name part (letters, digits, ``. _ -``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"


def entry_name(label: str, seed: int, key: str) -> str:
    """``<label>-s<seed>-<key[:8]>``: the run folder's and the store entry's name."""
    return f"{safe_label(label)}-s{seed}-{key[:8]}"


def _meta_key(meta: Path) -> str | None:
    try:
        value = json.loads(meta.read_text()).get("store_key")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:  # mtime and size make the cache safe
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
