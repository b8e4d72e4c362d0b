"""A chapter's record: what it ran, where and when each run was trained, its headline rows.

:meth:`.chapter.Chapter.finish` writes ``<records>/<chapter>.json`` (:mod:`.paths` says where);
the status page and the results chapter read the records back, local layer first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..environment import now_iso
from .banners import provenance
from .paths import record_layers, records_dir
from .runner import Obtained
from .tables import run_summary

__all__ = ["complete_record", "load_records", "run_rows", "write_record"]


def run_rows(obtained: Sequence[Obtained]) -> list[dict[str, Any]]:
    """One row per run of a chapter: its summary, store key, and whether it was trained here or read back."""
    rows = []
    for got in obtained:
        try:
            row = run_summary(got.run)
        except (ValueError, KeyError):  # a run without history (e.g. interrupted)
            continue
        rows.append({**row, "key": got.key, "from": got.source,
                     "trained_at": (got.run.record.get("end_time") or "")[:19],
                     "store_entry": got.entry.path.name if got.entry is not None else None})
    return rows


def complete_record(record: Mapping[str, Any], *, minutes: float, runs: list[dict[str, Any]],
                    results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The record begun by :func:`.chapter.start`, finished: time, runs, their provenance, headline rows."""
    on_gpu = record["environment"]["device_type"] == "cuda"
    return {**record, "finished_at": now_iso(), "minutes": round(minutes, 3),
            "gpu_minutes": round(minutes if on_gpu else 0.0, 3), "runs": runs, "provenance": provenance(runs),
            "results": [dict(r) for r in results]}


def write_record(chapter: str, record: Mapping[str, Any]) -> Path:
    """``<records>/<chapter>.json``, atomically."""
    path = records_dir() / f"{chapter}.json"
    return write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def load_records(records_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every ``<chapter>.json`` by name: of ``records_dir``, or (None) of the record layers of
    :func:`.paths.record_layers`, local first: a chapter's local record hides its committed one."""
    folders = [Path(records_dir)] if records_dir is not None else record_layers()
    found: dict[str, Path] = {}
    for folder in folders:
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            found.setdefault(p.name, p)
    return [json.loads(found[name].read_text()) for name in sorted(found)]
