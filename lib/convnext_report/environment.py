"""Where a result was computed: device, CPU, package versions, git commit and command line."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_model", "device_name", "environment_record", "git_output", "git_state", "now_iso", "package_versions"]

_PACKAGES = ("torch", "torchvision", "timm", "numpy", "convnext-report")


def now_iso() -> str:
    """The local time with its UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def device_name(device: torch.device) -> str:
    """``torch.cuda.get_device_name`` on CUDA, else the CPU model and its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (``None``: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_output(where: str | os.PathLike, *args: str) -> str | None:
    """The stripped output of ``git -C where ARGS``, or None where git fails or is missing."""
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``path``."""
    where = path or Path(__file__).resolve().parent
    commit = git_output(where, "rev-parse", "HEAD")
    status = git_output(where, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def environment_record(device: torch.device, *, world_size: int = 1) -> dict[str, Any]:
    """Device, versions, git state and command line of the current process."""
    record: dict[str, Any] = {
        "device": str(device), "device_name": device_name(device), "world_size": world_size, "cpu": cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "versions": package_versions(), "git": git_state(), "command": " ".join(sys.argv),
    }
    if device.type == "cuda":
        record["cuda"] = torch.version.cuda
    return record
