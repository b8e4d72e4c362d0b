"""The on-disk cache of decoded images: where it lives, its keys, and entries that check themselves.

* Entries are keyed by the sha256 of the source parquet files; the checksums themselves are
  cached by (path, size, mtime) so a warm start takes seconds.
* Every entry is a tensor plus a JSON record of its sha256, shape and dtype, written atomically;
  an entry that does not match its record is reported, ignored and written again.
* The first use of a cache folder in a process deletes the temporary files that killed writers left
  in it (a half-written 300 MB tensor, say), never one that a live process is still writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import remove_orphans, torch_save_atomic, write_json_atomic, write_text_atomic

__all__ = ["CACHE_ENV", "cache_key", "cache_root", "file_sha256", "load_entry", "record_path", "save_entry",
           "tensor_sha256"]

CACHE_ENV = "CONVNEXT_REPORT_CACHE"
_CHECKSUMS = "checksums.json"
_SWEPT: set[Path] = set()  # cache folders this process has cleared of dead writers' temporary files


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$CONVNEXT_REPORT_CACHE``, else ``~/.cache/convnext_report`` (created; on its
    first use in this process, the temporary files of killed writers in it are deleted)."""
    value = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
    root = Path(value).expanduser() if value else Path.home() / ".cache" / "convnext_report"
    root.mkdir(parents=True, exist_ok=True)
    if root not in _SWEPT:  # once per process: the litter of writers that were killed
        remove_orphans(root)
        _SWEPT.add(root)
    return root


def file_sha256(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a file, remembered in ``<cache>/checksums.json`` by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    index_path = cache_root(cache_dir) / _CHECKSUMS
    index = _read_json(index_path)
    hit = index.get(str(p))
    if hit and all(hit.get(k) == v for k, v in stamp.items()):
        return hit["sha256"]
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    index = _read_json(index_path)  # re-read: another process may have added entries
    index[str(p)] = {**stamp, "sha256": digest.hexdigest()}
    write_text_atomic(index_path, json.dumps(index, indent=1, sort_keys=True))
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def cache_key(*parts: object) -> str:
    """A short stable hex key from the given parts."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:24]


def record_path(path: Path) -> Path:
    """The JSON record (checksum, shape, dtype) of the cache entry ``path``."""
    return path.with_name(path.name + ".json")


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a CPU tensor's bytes (about 0.2 s for the 300 MB Tiny-ImageNet train tensor)."""
    array = np.ascontiguousarray(tensor.numpy())
    return hashlib.sha256(array.reshape(-1).view(np.uint8)).hexdigest()


def save_entry(tensor: torch.Tensor, path: Path, *, format: int, **info: Any) -> None:
    """Write ``tensor`` to ``path`` and then its record (layout ``format``, sha256, shape, dtype and
    ``info``), both atomically; interrupted (Ctrl-C, an exception), it leaves neither."""
    record = {"format": format, "sha256": tensor_sha256(tensor), "shape": list(tensor.shape),
              "dtype": str(tensor.dtype), **info}
    torch_save_atomic(tensor, path)
    try:
        write_json_atomic(record_path(path), record)
    except BaseException:
        path.unlink(missing_ok=True)  # a tensor without its record would be reported as damaged
        raise


def load_entry(path: Path, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, dict] | None:
    """(tensor, record) of the cache entry ``path``, or ``None`` when it is absent or untrustworthy.

    An entry that exists but is unreadable, has no record, or does not match its record or the
    expected ``shape``/``dtype`` is reported with a warning naming the file; the caller decodes
    again and overwrites it.
    """
    if not path.exists():
        return None
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        record = json.loads(record_path(path).read_text())
        problem = _entry_problem(tensor, record, shape, dtype)
    except Exception as err:  # unreadable tensor, missing or broken record
        problem = f"cannot be read ({type(err).__name__}: {err})"
    if problem is None:
        return tensor, record
    warnings.warn(f"ignoring cache file {path}: it {problem}; decoding again and overwriting it", stacklevel=2)
    return None


def _entry_problem(tensor: Any, record: Any, shape: tuple[int, ...], dtype: torch.dtype) -> str | None:
    """What is wrong with a loaded cache entry, or ``None``."""
    if not isinstance(tensor, torch.Tensor) or not isinstance(record, dict):
        return "does not hold a tensor and its record"
    if tensor.dtype != dtype or tuple(tensor.shape) != shape:
        return f"holds a {tensor.dtype} tensor of shape {tuple(tensor.shape)}, the split needs {dtype} {shape}"
    if record.get("sha256") != tensor_sha256(tensor):
        return "does not match the sha256 in its record (replaced or damaged)"
    return None
