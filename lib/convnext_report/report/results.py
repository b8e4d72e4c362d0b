"""Chapter records and what is built from them: headline rows, the results and status tables, glue.
A smoke number is never shown as a result."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import store
from .banners import SMOKE_LABEL, provenance_text
from .claims import SOURCE_CLAIMS, source_value
from .glue import glue
from .tables import mean_std, runs_frame

__all__ = [
    "GLUE_KEYS", "SMOKE_LABEL", "best_text", "change_text", "compare_with_source", "double_source_text",
    "find_headline", "format_headline", "glue_all", "glue_texts", "glue_values", "headline", "headline_rows",
    "headline_texts", "headlines", "load_records", "results_table", "runs_table", "status_table", "versus_frame",
]



def load_records(records_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every ``<chapter>.json`` by name: of ``records_dir``, or (None) of the record layers, local first (a
    chapter's local record hides its committed one)."""
    folders = [Path(records_dir)] if records_dir is not None else store.layers("records")
    found: dict[str, Path] = {}
    for folder in folders:
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            found.setdefault(p.name, p)
    return [json.loads(found[name].read_text()) for name in sorted(found)]


def headline(key: str, runs: Sequence[Any], *, experiment: str, chapter: str, dataset: str | None = None,
             resolution: str | int | None = None, source_key: str | None = None, metric: str = "test top-1 (%)",
             value: str = "top1", note: str = "") -> dict[str, Any]:
    """A headline row for the chapter record: ``value`` over ``runs`` (seed mean ± std), with context;
    ``source_key`` names the claim it answers (:data:`.claims.SOURCE_CLAIMS`)."""
    first = runs[0].config if runs else None
    if dataset is None and first is not None:
        dataset = f"{first.dataset}, {first.train_per_class or 'all'} train/class"
    if resolution is None and first is not None:
        resolution = f"{first.image_size} px, stem stride {first.stem_stride}"
    if source_key is not None:
        source_value(source_key)  # fail early on a typo
    frame = runs_frame(list(runs))
    if frame.empty:
        raise ValueError(f"headline {key!r} has no runs")
    values = frame[value].astype(float)
    epochs = f"{int(frame['epochs_run'].min())}–{int(frame['epochs_run'].max())}" \
        if frame["epochs_run"].nunique() > 1 else str(int(frame["epochs_run"].iloc[0]))
    max_epochs = {r.config.epochs for r in runs}
    if max_epochs and max(max_epochs) > int(frame["epochs_run"].max()):
        epochs += f" of ≤{max(max_epochs)} (early stopping)"
    peeked = value == "top1" and frame["peeked_top1"].notna().all()
    return {"key": key, "experiment": experiment, "chapter": chapter, "metric": metric, "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None, "n_seeds": int(len(values)),
            "dataset": dataset, "resolution": str(resolution), "epochs": epochs,
            "minutes": float(frame["minutes"].sum()), "gpu_minutes": float(frame["gpu_minutes"].sum()),
            "selection": "; ".join(sorted(set(frame["selection"].astype(str)))),
            "peeked_mean": float(frame["peeked_top1"].mean()) if peeked else None, "source_key": source_key,
            "note": note}


def headlines(prefix: str, runs: Mapping[str, Sequence[Any]], *, chapter: str, title: str | None = None,
              source_key: Any = None, **kw: Any) -> list[dict[str, Any]]:
    """One :func:`headline` per label of ``runs``: key ``<prefix>_<label>`` (lower case, ``_`` for other
    characters). ``source_key``: a claim's key, or a function of a run's config returning one (or None)."""
    rows = []
    for label, group in runs.items():
        if not group:
            continue
        key = f"{prefix}_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        claim = source_key(group[0].config) if callable(source_key) else source_key
        rows.append(headline(key, group, experiment=f"{title or prefix}: {label}", chapter=chapter,
                             source_key=claim, **kw))
    return rows


def status_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Where and how each chapter was last executed (the status page)."""
    rows = []
    for r in records:
        env = r.get("environment", {})
        commit = env.get("git_commit") or "—"
        if env.get("git_dirty"):
            commit += " (+ local changes)"
        rows.append({"chapter": r.get("title") or r["chapter"], "configuration": r.get("configuration", "—"),
                     "device": env.get("device", "—"),
                     "executed": (r.get("finished_at") or "")[:16].replace("T", " "),
                     "minutes": round(float(r.get("minutes", float("nan"))), 1),
                     "GPU minutes": round(float(r.get("gpu_minutes", 0.0)), 1),
                     "versions": f"Python {env.get('python', '—')} · torch {env.get('torch', '—')} · timm "
                                 f"{env.get('timm', '—')}",
                     "commit": commit, "runs": provenance_text(r.get("provenance")).replace("**", "") or "—"})
    return pd.DataFrame(rows, columns=["chapter", "configuration", "device", "executed", "minutes", "GPU minutes",
                                       "versions", "commit", "runs"])


def headline_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All headline rows of all records, each carrying its record's configuration and device."""
    rows = []
    for r in records:
        for h in r.get("results", []):
            rows.append({**h, "configuration": r.get("configuration", "full"),
                         "device": r.get("environment", {}).get("device", "—")})
    return rows


def format_headline(row: Mapping[str, Any], *, digits: int = 1) -> str:
    """The number as prose shows it, or the smoke label when it comes from the smoke configuration."""
    if row.get("configuration") == "smoke":
        return SMOKE_LABEL
    unit = " points" if str(row.get("metric", "")).startswith("gap") else " %"
    return mean_std(row["mean"], row.get("std"), row.get("n_seeds"), digits=digits, unit=unit)


def results_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every headline number next to the source's: what it measures, on what, for how long, where."""
    rows = []
    for h in headline_rows(records):
        claim = SOURCE_CLAIMS.get(h.get("source_key") or "", {})
        rows.append({"experiment": h["experiment"], "this book": format_headline(h),
                     "source": f"{claim['value']:g} % (source {claim['source']})" if claim else "—",
                     "measured on": f"{h['dataset']}; {h['resolution']}; {h.get('metric', 'test top-1 (%)')}",
                     "epochs": h["epochs"], "GPU minutes": round(h.get("gpu_minutes") or 0.0, 1),
                     "chapter": h["chapter"][:2]})
    return pd.DataFrame(rows, columns=["experiment", "this book", "source", "measured on", "epochs", "GPU minutes",
                                       "chapter"])


def find_headline(records: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """The headline row ``key`` (with its record's configuration and device), or None."""
    return next((h for h in headline_rows(records) if h["key"] == key), None)


def compare_with_source(rows: Sequence[Mapping[str, Any] | None], labels: Sequence[str]) -> pd.DataFrame:
    """Headline rows (None: not executed yet) next to the claims they answer; for two rows, a last row with
    the change from the first to the second, ours (± the seeds' combined spread) and the source's."""
    out = []
    for label, row in zip(labels, rows):
        claim = SOURCE_CLAIMS.get((row or {}).get("source_key") or "", {})
        out.append({"configuration": label,
                    "this book": format_headline(row) if row else "— (chapter not executed yet)",
                    "data (this book)": row["dataset"] if row else "—",
                    "source": f"{claim['value']:g} %" if claim else "—",
                    "source setting": claim.get("setting", "—")})
    if len(rows) == 2:
        out.append(_change_row(*rows, labels))
    return pd.DataFrame(out).set_index("configuration")


def change_text(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> str:
    """``second`` minus ``first`` in points, ± the seeds' combined spread (smoke or missing: said so)."""
    if first is None or second is None:
        return "— (chapter not executed yet)"
    if "smoke" in (first.get("configuration"), second.get("configuration")):
        return SMOKE_LABEL
    spread = math.hypot(first.get("std") or 0.0, second.get("std") or 0.0)
    return f"{second['mean'] - first['mean']:+.2f} ± {spread:.2f} points"


def _change_row(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None, labels: Sequence[str]) -> dict:
    """The change from ``first`` to ``second``: ours and the source's."""
    claims = [SOURCE_CLAIMS.get((r or {}).get("source_key") or "") for r in (first, second)]
    source = f"{claims[1]['value'] - claims[0]['value']:+.2f} points" if all(claims) else "—"
    return {"configuration": f"change: {labels[0]} → {labels[1]}", "this book": change_text(first, second),
            "data (this book)": "", "source": source, "source setting": ""}


def runs_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every run of every chapter record: where it ran and how long it took."""
    rows = [{"chapter": r["chapter"], "configuration": r.get("configuration"), **run}
            for r in records for run in r.get("runs", [])]
    columns = ["chapter", "configuration", "label", "seed", "dataset", "model", "top1", "epochs_run",
               "minutes", "gpu_minutes", "device"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=columns) if not frame.empty else pd.DataFrame(columns=columns)


#: glue keys of the results chapter's prose -> the headline key, or ``best:<prefix>`` (best row with that prefix)
GLUE_KEYS: dict[str, str] = {
    "backbone_top1": "backbone_top1", "baseline_top1": "baseline_top1", "baseline_gap": "baseline_gap",
    "improved_top1": "improved_top1", "optim_best_source": "best:opt_source_cifar100_",
    "optim_best_modern": "best:opt_small_image_cifar100_", "ln_top1": "norm_source_layernorm",
    "dyt_top1": "norm_source_dyt"}


def glue_values(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Text for every key of :data:`GLUE_KEYS` and ``src_<claim>`` of each claim ("not executed yet" where
    missing, :data:`SMOKE_LABEL` for smoke numbers)."""
    rows = headline_rows(records)
    by_key = {r["key"]: r for r in rows}
    values: dict[str, str] = {}
    for key, rule in GLUE_KEYS.items():
        if rule.startswith("best:"):
            values[key] = best_text(rows, rule.removeprefix("best:"))
        else:
            values[key] = format_headline(by_key[rule]) if rule in by_key else "not executed yet"
    for claim, info in SOURCE_CLAIMS.items():
        values[f"src_{claim}"] = f"{info['value']:g}" + (" %" if "%" in info["metric"] else "")
    values["double_source"] = double_source_text()
    return values


def best_text(rows: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """The best headline among ``rows`` whose key starts with ``prefix``, with its experiment."""
    candidates = [r for r in rows if r["key"].startswith(prefix)]
    if not candidates:
        return "not executed yet"
    row = max(candidates, key=lambda r: r["mean"])
    text = format_headline(row)
    return text if row.get("configuration") == "smoke" else f"{text} ({row['experiment']})"


def double_source_text() -> str:
    """Twice source 001's best number: the bar a recipe made for small images should clear."""
    return f"{2 * SOURCE_CLAIMS['001_test1_base_radam']['value']:.1f} %"


def glue_texts(values: Mapping[str, str]) -> dict[str, str]:
    """Glue ``key -> text`` into the running notebook (:mod:`.glue`), for ``{glue:text}`key``` in its prose."""
    for key, text in values.items():
        glue(key, text, display=False)
    return dict(values)


def headline_texts(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``key -> text`` of headline rows, and ``<key>_peeked`` (what selecting on the test split would report)."""
    values = {}
    for row in rows:
        values[row["key"]] = format_headline(row)
        if row.get("peeked_mean") is not None:
            values[row["key"] + "_peeked"] = SMOKE_LABEL if row.get("configuration") == "smoke" \
                else f"{row['peeked_mean']:.1f} % (+{row['peeked_mean'] - row['mean']:.1f} points)"
    return values


def glue_all(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Glue :func:`glue_values` into the running notebook (myst-nb) and return them."""
    return glue_texts(glue_values(records))


def versus_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Full-configuration headline rows that answer a source claim: ours and theirs side by side."""
    rows = []
    for h in headline_rows(records):
        if h.get("configuration") == "smoke" or not h.get("source_key"):
            continue
        rows.append({"experiment": h["experiment"], "this book": h["mean"], "std": h.get("std"),
                     "source": SOURCE_CLAIMS[h["source_key"]]["value"]})
    return pd.DataFrame(rows, columns=["experiment", "this book", "std", "source"])
