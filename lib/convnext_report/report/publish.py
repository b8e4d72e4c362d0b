"""Publishing: copy what a chapter used from the local layer into the repository: its record into
``book/records/``, the store entries it lists into ``results/`` (those there stay), its executed notebook,
when given, into ``book/`` (a page without a record, the status page, publishes its notebook alone).
Everything is checked first, copied under temporary names, then renamed: a refused call changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import store

__all__ = ["PublishError", "publish"]


class PublishError(RuntimeError):
    """Something a chapter's record lists is missing or damaged; nothing was copied."""


def _plan(chapter: str, notebook: Path | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, target) pairs for ``chapter``, and the problems that forbid copying them."""
    copies, problems = [], []
    if notebook is not None:
        copies.append((notebook, store.committed_dir("notebooks") / f"{chapter}.ipynb"))
        if not notebook.is_file():
            problems.append(f"{chapter}: the executed notebook {notebook} does not exist")
    record_file = store.local_dir("records") / f"{chapter}.json"
    if not record_file.is_file():  # a page that writes no record (the status page) publishes its notebook alone
        missing = f"{chapter}: no record at {record_file}: execute the chapter first (it writes its record there)"
        return copies, problems + ([] if notebook is not None else [missing])
    record = json.loads(record_file.read_text())
    copies.append((record_file, store.committed_dir("records") / record_file.name))
    committed = store.committed_dir("results").resolve()
    for run in record.get("runs", []):
        entry = store.find(run["key"], smoke=record.get("configuration") == "smoke")
        what = f"{chapter}: run {run.get('label')!r} (seed {run.get('seed')}, key {run['key'][:8]})"
        if entry is None:
            problems.append(f"{what} is in no store layer ({', '.join(map(str, store.layers('results')))})")
        elif damage := store.verify(entry):
            problems.append(f"{what}: its entry {entry.path} is damaged ({'; '.join(damage)})")
        elif not entry.path.resolve().is_relative_to(committed):
            rel = entry.path.resolve().relative_to(store.local_dir("results").resolve())
            copies.append((entry.path, committed / rel))
    return copies, problems


def publish(chapters: Sequence[str], *, notebooks: Mapping[str, Path] | None = None) -> list[Path]:
    """Copy what ``chapters`` used (``notebooks``: chapter -> executed notebook) into the repository; the
    paths written. :class:`PublishError` (nothing copied) names what is missing or damaged."""
    copies, problems = [], []
    for chapter in chapters:
        more, found = _plan(chapter, Path((notebooks or {})[chapter]) if chapter in (notebooks or {}) else None)
        copies += more
        problems += found
    if problems:
        raise PublishError("nothing published:\n" + "\n".join(f"- {p}" for p in problems))
    staged: dict[Path, Path] = {}  # target -> its copy under a temporary name
    try:
        for source, target in copies:
            if target in staged or (source.is_dir() and target.is_dir()):  # an entry already published
                continue
            staged[target] = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, staged[target])
            else:
                shutil.copyfile(source, staged[target])
        for target, tmp in staged.items():
            os.replace(tmp, target)
    finally:
        for tmp in staged.values():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
    return list(staged)
