"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every file of a run folder, every cached tensor and every stored result is written to a fresh
temporary file beside its target and renamed into place, so a killed process never leaves a
half-written ``history.csv``, checkpoint or cache entry behind. A temporary file's name carries its
writer's process id and host, so the file a killed writer left can be told from one still being
written (:func:`remove_orphans`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["atomic_write", "remove_orphans", "torch_save_atomic", "write_json_atomic", "write_text_atomic"]

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "-"
#: ``.<target name>.<pid>@<host>.<random>.tmp``, as :func:`atomic_write` names its temporary files
_TEMP_NAME = re.compile(r"\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a fresh temporary file beside ``path``, then rename it onto
    ``path``: readers see the old file or the whole new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files under ``folder`` whose writer died before renaming them (a killed
    process) and return their paths. Only files made on this host by a process that no longer runs
    are removed: never one a live process is writing. A no-op where processes cannot be probed."""
    removed = []
    if os.name != "posix":  # os.kill(pid, 0) probes only on POSIX (on Windows it terminates)
        return removed
    for tmp in Path(folder).rglob(".*.tmp"):
        match = _TEMP_NAME.fullmatch(tmp.name)
        if match and match["host"] == _HOST and not _running(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts: it has not been reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (PermissionError), or not a pid: keep its file
        return True
    return True


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text))


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as indented, strict JSON atomically: NaN and infinities become ``null`` (a bare
    ``NaN`` is not JSON), numpy and torch numbers become Python numbers, paths strings."""
    return write_text_atomic(path, json.dumps(_plain(data), indent=indent, allow_nan=False) + "\n")


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    return atomic_write(path, lambda p: torch.save(obj, p))


def _plain(value: Any) -> Any:
    """``value`` with only JSON's types: finite floats (else None), lists, string-keyed dicts, ..."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy or torch scalars and arrays
        return _plain(value.tolist())
    return value
