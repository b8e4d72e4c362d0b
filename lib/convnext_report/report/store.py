"""The result store: every finished run's small files, kept in the repository and found by its key.

An entry is ``<store>/[smoke/]<chapter>/<label>-s<seed>-<key[:8]>/`` and holds a copy of every file
of the run folder except weights (``config.yaml``, ``history.csv``, ``record.json``, ``eval.json``,
``eval.npz``, ``log.txt``, ``dyt_alpha.csv``, ...) plus ``store.json``: the key, chapter, label, seed,
configuration, :data:`~.keys.STORE_VERSION`, when and where the run was trained, and the sha256 of
every file (checked when the entry is read). A run is found by its key (:func:`.keys.run_key`),
never by its folder name; stored runs load as :class:`~convnext_report.runfolder.Run` objects
without weights. :mod:`.paths` says which store roots are read and which one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..atomic import write_json_atomic, write_text_atomic
from ..environment import now_iso
from ..runfolder import STORE_MARKER, Run, load_run, read_json
from .keys import RUNTIME_KEYS, STORE_VERSION, WEIGHT_SUFFIXES, entry_name
from .paths import committed_store_dir, store_layers, store_write_dir

__all__ = ["MAX_ENTRY_BYTES", "STORE_FILE", "Entry", "StoreError", "configuration_root", "entries", "find", "load",
           "publish", "put", "attach", "verify"]

STORE_FILE = STORE_MARKER
#: an entry should stay under this size (eval.npz of 10,000 images is about 60 KB); larger ones warn
MAX_ENTRY_BYTES = 300_000


class StoreError(RuntimeError):
    """An entry cannot be written or read (unfinished run, changed file)."""


@dataclass(frozen=True)
class Entry:
    """One stored run: its folder and its ``store.json``."""

    path: Path
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.meta["key"])

    @property
    def label(self) -> str:
        return str(self.meta.get("label", ""))

    @property
    def seed(self) -> int:
        return int(self.meta.get("seed", 0))

    @property
    def chapter(self) -> str:
        return str(self.meta.get("chapter", ""))

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())


def configuration_root(root: Path, smoke: bool) -> Path:
    """``<root>/smoke`` for the smoke configuration, ``<root>`` for the full one."""
    return Path(root) / "smoke" if smoke else Path(root)


def _read(meta_file: Path) -> Entry | None:
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None
    return Entry(meta_file.parent, meta) if isinstance(meta, dict) and meta.get("key") else None


def find(key: str, *, smoke: bool, layers: list[Path] | None = None) -> Entry | None:
    """The entry with ``key`` in the first store root that has it (default roots: :func:`.paths.store_layers`)."""
    for root in layers if layers is not None else store_layers():
        base = configuration_root(root, smoke)
        for meta_file in sorted(base.glob(f"*/*-{key[:8]}/{STORE_FILE}")):
            entry = _read(meta_file)
            if entry is not None and entry.key == key:
                return entry
    return None


def entries(*, smoke: bool, layers: list[Path] | None = None) -> list[Entry]:
    """Every entry of a configuration, each key once (the first root wins)."""
    found: dict[str, Entry] = {}
    for root in layers if layers is not None else store_layers():
        for meta_file in sorted(configuration_root(root, smoke).glob(f"*/*/{STORE_FILE}")):
            entry = _read(meta_file)
            if entry is not None:
                found.setdefault(entry.key, entry)
    return list(found.values())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _small_files(folder: Path) -> list[Path]:
    """Every plain file of a run folder except weights, hidden and temporary files."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix not in WEIGHT_SUFFIXES and not p.name.endswith(".tmp") and p.name != STORE_FILE)


def put(folder: str | os.PathLike, *, key: str, chapter: str, label: str, seed: int, smoke: bool,
        root: Path | None = None, info: dict[str, Any] | None = None, replace: bool = False) -> Entry:
    """Copy a finished run folder's small files into the store (default root: :func:`.paths.store_write_dir`).

    Written into a temporary folder and renamed into place, so an entry is whole or absent. An
    entry with the same key already there is returned unchanged, or replaced if ``replace``.
    """
    folder = Path(folder)
    record = read_json(folder / "record.json")
    status = record.get("status")  # finished, or stopped by a non-finite loss (a result too)
    if not (status == "finished" or (status == "failed" and record.get("stop_reason") == "non_finite_loss")):
        raise StoreError(f"run {folder} is not finished (status {record.get('status')!r}); only finished runs are stored")
    dest = configuration_root(root or store_write_dir(), smoke) / chapter / entry_name(label, seed, key)
    existing = _read(dest / STORE_FILE)
    if existing is not None and existing.key == key and not replace:
        return existing
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for src in _small_files(folder):
            shutil.copyfile(src, tmp / src.name)
        if (tmp / "config.yaml").is_file():  # the data folder is the machine's; here it is $CONVNEXT_REPORT_DATA
            values = yaml.safe_load((tmp / "config.yaml").read_text())
            (tmp / "config.yaml").write_text(yaml.safe_dump({**values, "data_dir": None}, sort_keys=False))
        on_gpu = str(record.get("device", "")).startswith("cuda")
        wall = record.get("wall_time_seconds")
        meta = {
            "key": key, "chapter": chapter, "label": label, "seed": seed,
            "configuration": "smoke" if smoke else "full", "store_version": STORE_VERSION, "stored_at": now_iso(),
            "trained_on": record.get("device_name") or record.get("device"), "device": record.get("device"),
            "trained_at": record.get("end_time"), "wall_time_seconds": wall,
            "gpu_seconds": round(float(wall), 1) if on_gpu and wall is not None else 0.0,
            "git_commit": (record.get("git") or {}).get("commit"), **(info or {}),
            "files": {p.name: _sha256(p) for p in sorted(tmp.iterdir())},
        }
        write_json_atomic(tmp / STORE_FILE, meta, indent=1)
        if dest.exists() and (existing is None or existing.key != key):  # another key under the same short name
            raise StoreError(f"{dest} exists with another key; remove it (git rm -r) or bump STORE_VERSION")
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    entry = Entry(dest, meta)
    if entry.bytes > MAX_ENTRY_BYTES:
        warnings.warn(f"store entry {dest} is {entry.bytes / 1e3:.0f} kB (over {MAX_ENTRY_BYTES / 1e3:.0f} kB)",
                      stacklevel=2)
    return entry


def publish(entry: Entry, root: Path | None = None) -> Entry:
    """Copy an entry of the local store into the committed one (default :func:`.paths.committed_store_dir`)."""
    root = root or committed_store_dir()
    smoke = entry.meta.get("configuration") == "smoke"
    dest = configuration_root(root, smoke) / entry.chapter / entry.path.name
    existing = _read(dest / STORE_FILE)
    if existing is not None and existing.key == entry.key:
        return existing
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(entry.path, tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Entry(dest, entry.meta)


def attach(entry: Entry, name: str, text: str) -> Entry:
    """Add a small file to an entry of the write root (e.g. chapter 3's backbone meta); a file already
    there is kept. Entries in a read-only root (the committed store when not publishing) are unchanged."""
    target = entry.path / name
    writable = entry.path.resolve().is_relative_to(store_write_dir().resolve())
    if target.is_file() or not writable:
        return entry
    write_text_atomic(target, text)
    meta = {**entry.meta, "files": {**entry.meta.get("files", {}), name: _sha256(target)}}
    write_json_atomic(entry.path / STORE_FILE, meta, indent=1)
    return Entry(entry.path, meta)


def verify(entry: Entry) -> list[str]:
    """Problems of an entry: files missing or changed since they were stored (empty: intact)."""
    problems = []
    for name, digest in entry.meta.get("files", {}).items():
        path = entry.path / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif _sha256(path) != digest:
            problems.append(f"{name} changed since it was stored")
    return problems


def load(entry: Entry, request: Any = None) -> Run:
    """The stored run as a :class:`Run` (no weights: ``load_model`` says so).

    ``request``: the config the chapter asked for; its runtime keys, ``extra`` and ``pretrained``
    replace the stored ones (same key, so the same computation), e.g. the data folder of this machine.
    """
    problems = verify(entry)
    if problems:
        raise StoreError(f"store entry {entry.path} is damaged: {'; '.join(problems)}. Restore it "
                         "(git checkout -- <entry>) or delete it to train the run again.")
    run = load_run(entry.path)
    if request is not None:
        keep = {k: getattr(request, k) for k in (*sorted(RUNTIME_KEYS), "pretrained")}
        run = replace(run, config=run.config.replace(**keep))
    return run
