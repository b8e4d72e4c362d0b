"""The result store, a run's key, where the book's files live (local and committed layers), and publishing
(ARCHITECTURE.md). An entry, ``<results>/[smoke/]<chapter>/<label>-s<seed>-<key[:8]>/``, holds a run folder's
files but weights, and ``store.json`` (key, provenance, each file's sha256)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..atomic import write_json_atomic, write_text_atomic
from ..config import inactive_keys
from ..environment import now_iso
from ..runfolder import RUNTIME_KEYS as RESUME_KEYS, Run, load_run, read_json

__all__ = ["IDENTITY_TAG", "MAX_ENTRY_BYTES", "RUNS_ENV", "STORE_FILE", "STORE_VERSION", "WEIGHT_SUFFIXES", "Entry",
           "PublishError", "StoreError", "attach", "display_path", "entries", "entry_name", "find", "layers", "load",
           "local_dir", "pretrained_identity", "publish", "put", "repo_root", "run_key", "runs_dir", "verify"]

RUNS_ENV = "CONVNEXT_REPORT_RUNS"
#: Bump when a code change changes what runs compute: every run then gets a new key and is trained again
STORE_VERSION = 2
#: config keys that do not change what a run computes: those a resumed run takes from the caller, and tags
RUNTIME_KEYS = frozenset(RESUME_KEYS) | {"extra"}
#: the ``extra`` tag naming the identity of ``pretrained`` (set by ``backbones.transfer_source``)
IDENTITY_TAG = "pretrained_identity"
#: files that hold weights: never part of the store, never a timm id
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt", ".bin")
#: the entry's own file: key, provenance, each file's sha256
STORE_FILE = "store.json"
#: a run folder's files that stay out of its entry: weights, temporary files, the entry's own file
_NOT_STORED = shutil.ignore_patterns(*(f"*{suffix}" for suffix in WEIGHT_SUFFIXES), ".*", "*.tmp", STORE_FILE)
#: an entry should stay under this size (eval.npz of 10,000 images is about 60 KB); larger ones warn
MAX_ENTRY_BYTES = 300_000


class StoreError(RuntimeError):
    """An entry cannot be written or read (unfinished run, changed file)."""


class PublishError(RuntimeError):
    """Something a chapter's record lists is missing or damaged; nothing was published."""


def repo_root() -> Path:
    """The book's root (the folder holding ``_toc.yml`` and ``book/``): searched from the cwd, then from here."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
                return folder
    raise FileNotFoundError("cannot find the book root (a folder with _toc.yml and book/): run from the repository")


def runs_dir() -> Path:
    """The local layer and every run folder: ``$CONVNEXT_REPORT_RUNS`` or ``<repo>/runs`` (never committed)."""
    value = os.environ.get(RUNS_ENV)
    return Path(value).expanduser() if value else repo_root() / "runs"


def local_dir(kind: str) -> Path:
    """``<runs>/<kind>``: ``results`` (store entries), ``records``, ``notebooks``, ``backbones``."""
    return runs_dir() / kind


def _committed_dir(kind: str) -> Path:
    """The repository's ``results/``, ``book/records/`` or ``book/`` (for notebooks)."""
    return repo_root() / {"results": "results", "records": "book/records", "notebooks": "book"}[kind]


def layers(kind: str) -> list[Path]:
    """Where ``kind`` is read from, first wins: the local layer, then the committed one."""
    local, committed = local_dir(kind), _committed_dir(kind)
    return [local] if local.resolve() == committed.resolve() else [local, committed]


def display_path(path: str | Path) -> str:
    """``path`` as a page may show it: ``<runs>/...`` or relative to the repository, never this machine's
    absolute folders (a page is rendered on one machine and read everywhere)."""
    path = Path(path)
    for base, name in ((runs_dir(), "<runs>/"), (repo_root(), "")):
        if path.is_absolute() and path.resolve().is_relative_to(base.resolve()):
            return f"{name}{path.resolve().relative_to(base.resolve())}"
    return path.name if path.is_absolute() else str(path)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pretrained_identity(config: Any) -> str | None:
    """``None``, ``"timm:<id>"``, ``"run:<store key>"`` (chapter 3's backbone) or ``"sha256:<hex>"``."""
    tag, value = (config.extra or {}).get(IDENTITY_TAG), config.pretrained
    if tag or value is None:
        return str(tag) if tag else None
    path = Path(value).expanduser()
    if path.is_file():
        key = read_json(path.with_suffix(".json")).get("store_key")
        return f"run:{key}" if key else f"sha256:{_sha256(path)}"
    if path.suffix in WEIGHT_SUFFIXES or ("/" in value and not value.startswith("hf-hub:")):
        raise FileNotFoundError(f"pretrained={value!r} is not a file, so the run cannot be identified; "
                                "pass an existing checkpoint or a timm id")
    return f"timm:{value}"


def run_key(config: Any) -> str:
    """The store key of ``config``: 64 hex digits, the same on every machine (ARCHITECTURE.md, "One run")."""
    skip = RUNTIME_KEYS | inactive_keys(config)
    values = {k: v for k, v in config.to_dict().items() if k not in skip}
    values["pretrained"] = pretrained_identity(config)
    text = json.dumps({"store_version": STORE_VERSION, "config": values}, sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def entry_name(label: str, seed: int, key: str) -> str:
    """``<label>-s<seed>-<key[:8]>`` (label as letters, digits and ``. _ -``): run folder and entry name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"
    return f"{safe}-s{seed}-{key[:8]}"


@dataclass(frozen=True)
class Entry:
    """One stored run: its folder and its ``store.json``."""

    path: Path
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.meta["key"])

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())


def entries(*, smoke: bool) -> list[Entry]:
    """Every entry of a configuration, each key once, layer by layer (the local layer wins)."""
    found: dict[str, Entry] = {}
    for root in layers("results"):
        for meta_file in sorted((root / "smoke" if smoke else root).glob(f"*/*/{STORE_FILE}")):
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):  # being written, or not an entry: not a stored run
                continue
            if isinstance(meta, dict) and meta.get("key"):
                found.setdefault(meta["key"], Entry(meta_file.parent, meta))
    return list(found.values())


def find(key: str, *, smoke: bool) -> Entry | None:
    """The entry with ``key`` in the first layer that has it."""
    return next((e for e in entries(smoke=smoke) if e.key == key), None)


def put(folder: str | os.PathLike, *, key: str, chapter: str, label: str, seed: int, smoke: bool,
        replace: bool = False) -> Entry:
    """Copy a finished run folder's small files into the local layer's store, whole or not at all (a
    temporary folder renamed into place); an entry of that key is kept, or replaced if ``replace``."""
    folder = Path(folder)
    record = read_json(folder / "record.json")
    status = record.get("status")  # finished, or stopped by a non-finite loss (a result too)
    if not (status == "finished" or (status == "failed" and record.get("stop_reason") == "non_finite_loss")):
        raise StoreError(f"run {folder} is not finished (status {status!r}); only finished runs are stored")
    dest = local_dir("results") / ("smoke" if smoke else "") / chapter / entry_name(label, seed, key)
    existing = read_json(dest / STORE_FILE)
    if existing.get("key") == key and not replace:
        return Entry(dest, existing)
    if existing.get("key") not in (None, key):
        raise StoreError(f"{dest} holds another key; remove it or bump STORE_VERSION")
    tmp, old = (dest.with_name(f".{dest.name}.{os.getpid()}.{s}") for s in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(folder, tmp, ignore=_NOT_STORED)
        if (tmp / "config.yaml").is_file():  # the data folder is the machine's; here it is $CONVNEXT_REPORT_DATA
            values = yaml.safe_load((tmp / "config.yaml").read_text())
            (tmp / "config.yaml").write_text(yaml.safe_dump({**values, "data_dir": None}, sort_keys=False))
        wall = record.get("wall_time_seconds")
        on_gpu = str(record.get("device", "")).startswith("cuda") and wall is not None
        meta = {"key": key, "chapter": chapter, "label": label, "seed": seed,
                "configuration": "smoke" if smoke else "full", "store_version": STORE_VERSION, "stored_at": now_iso(),
                "trained_on": record.get("device_name") or record.get("device"), "device": record.get("device"),
                "trained_at": record.get("end_time"), "wall_time_seconds": wall,
                "gpu_seconds": round(float(wall), 1) if on_gpu else 0.0,
                "git_commit": (record.get("git") or {}).get("commit"),
                "files": {p.name: _sha256(p) for p in sorted(tmp.iterdir())}}
        write_json_atomic(tmp / STORE_FILE, meta, indent=1)
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


def attach(entry: Entry, name: str, text: str) -> Entry:
    """Add a small file to a local entry (e.g. chapter 3's backbone meta); a file already there is kept, and
    a committed entry is never changed (``publish`` writes that layer)."""
    target = entry.path / name
    if target.is_file() or not entry.path.resolve().is_relative_to(local_dir("results").resolve()):
        return entry
    write_text_atomic(target, text)
    meta = {**entry.meta, "files": {**entry.meta.get("files", {}), name: _sha256(target)}}
    write_json_atomic(entry.path / STORE_FILE, meta, indent=1)
    return Entry(entry.path, meta)


def verify(entry: Entry) -> list[str]:
    """Problems of an entry: files missing or changed since they were stored (empty: intact)."""
    return [f"{name} {'changed since it was stored' if (entry.path / name).is_file() else 'is missing'}"
            for name, digest in entry.meta.get("files", {}).items()
            if not (entry.path / name).is_file() or _sha256(entry.path / name) != digest]


def load(entry: Entry, request: Any = None) -> Run:
    """The stored run as a :class:`Run` without weights; ``request`` (the config asked for, same key) gives
    its runtime keys, ``extra`` and ``pretrained`` (e.g. this machine's data folder)."""
    problems = verify(entry)
    if problems:
        raise StoreError(f"store entry {entry.path} is damaged: {'; '.join(problems)}. Restore it "
                         "(git checkout -- <entry>) or delete it to train the run again.")
    run = load_run(entry.path)
    if request is not None:
        keep = {k: getattr(request, k) for k in (*sorted(RUNTIME_KEYS), "pretrained")}
        run = replace(run, config=run.config.replace(**keep))
    return run


def _to_publish(chapter: str, notebook: Path | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, target) pairs that publish ``chapter`` (its record, the entries it lists, the notebook), and the
    problems that forbid copying them (a page without a record, the status page, publishes its notebook alone)."""
    copies = [(notebook, _committed_dir("notebooks") / f"{chapter}.ipynb")] if notebook is not None else []
    problems = [f"{chapter}: the executed notebook {notebook} does not exist"] if copies and not notebook.is_file() else []
    record_file = local_dir("records") / f"{chapter}.json"
    if not record_file.is_file():
        missing = f"{chapter}: no record at {record_file}: execute the chapter first (it writes its record there)"
        return copies, problems + ([] if copies else [missing])
    record = json.loads(record_file.read_text())
    copies.append((record_file, _committed_dir("records") / record_file.name))
    committed = _committed_dir("results").resolve()
    for run in record.get("runs", []):
        entry = find(run["key"], smoke=record.get("configuration") == "smoke")
        what = f"{chapter}: run {run.get('label')!r} (seed {run.get('seed')}, key {run['key'][:8]})"
        if entry is None:
            problems.append(f"{what} is in no store layer ({', '.join(map(str, layers('results')))})")
        elif damage := verify(entry):
            problems.append(f"{what}: its entry {entry.path} is damaged ({'; '.join(damage)})")
        elif not entry.path.resolve().is_relative_to(committed):
            copies.append((entry.path, committed / entry.path.resolve().relative_to(local_dir("results").resolve())))
    return copies, problems


def publish(chapters: Sequence[str], *, notebooks: Mapping[str, Path] | None = None) -> list[Path]:
    """Copy what ``chapters`` used (``notebooks``: chapter -> executed notebook) into the repository; the paths
    written. All is checked first (:class:`PublishError`: nothing copied), then staged under temporary names."""
    found = [_to_publish(c, Path(notebooks[c]) if c in (notebooks or {}) else None) for c in chapters]
    copies, problems = [c for more, _ in found for c in more], [p for _, more in found for p in more]
    if problems:
        raise PublishError("nothing published:\n" + "\n".join(f"- {p}" for p in problems))
    staged: dict[Path, Path] = {}  # target -> its copy under a temporary name
    try:
        for source, target in copies:
            if target in staged or (source.is_dir() and target.is_dir()):  # an entry already published
                continue
            staged[target] = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copyfile)(source, staged[target])
        for target, tmp in staged.items():
            os.replace(tmp, target)
    finally:
        for tmp in staged.values():  # what a failed copy left: a folder or a file
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.unlink(missing_ok=True)
    return list(staged)
