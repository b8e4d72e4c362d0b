"""The chapters' records and what pages build from them (headline rows, their texts, the results and status tables,
the box at a glance). A smoke number is never a result: its text is None, a table shows "—"."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shlex
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..environment import git_output
from ..summary import runs_frame
from . import store
from .claims import SOURCE_CLAIMS, source_value
from .experiments import TRAINING_CHAPTERS, notebook, smoke_file
from .tables import Markdown, Table, show

__all__ = ["best_text", "change_text", "glance", "headline", "headline_rows", "headline_table", "headlines",
           "load_records", "paragraph", "provenance_text", "rerun_command", "results_csv", "state", "status_table",
           "texts"]


def load_records(records_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every ``<chapter>.json`` of ``records_dir``, or (None) of the record layers (a local one hides the committed)."""
    folders = [Path(records_dir)] if records_dir is not None else store.layers("records")
    found = {p.name: p for folder in reversed(folders) if folder.is_dir() for p in folder.glob("*.json")}
    return [json.loads(found[name].read_text()) for name in sorted(found)]


def provenance_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """Where, when and how long a record's runs trained (``"6 runs (4 from the store) on NVIDIA H100, …"``); "—"."""
    if not runs:
        return "—"
    devices = ", ".join(dict.fromkeys(str(r.get("device") or "unknown device") for r in runs))
    dates = sorted(str(r.get("trained_at") or "")[:10] for r in runs if r.get("trained_at")) or ["date unknown"]
    stored = sum(r.get("from") == "store" for r in runs)
    minutes = [sum(float(r.get(k) or 0.0) for r in runs) for k in ("minutes", "gpu_minutes")]
    return (f"{len(runs)} run{'s' if len(runs) != 1 else ''} ({stored} from the store) on {devices}, "
            f"{' – '.join(dict.fromkeys([dates[0], dates[-1]]))}, {minutes[0]:.1f} min ({minutes[1]:.1f} GPU min)")


def headline(key: str, runs: Sequence[Any], *, experiment: str, source_key: str | None = None,
             metric: str = "test top-1 (%)", value: str = "top1") -> dict[str, Any]:
    """A headline row for the record: ``value`` over ``runs`` (seed mean ± std), its setup and the claim it answers."""
    if source_key is not None:
        source_value(source_key)  # fail early on a typo
    if not runs:
        raise ValueError(f"headline {key!r} has no runs")
    frame, first = runs_frame(list(runs)), runs[0].config
    values = frame[value].astype(float)
    epochs = "–".join(map(str, dict.fromkeys([frame["epochs_run"].min(), frame["epochs_run"].max()])))
    if first.epochs > frame["epochs_run"].max():
        epochs += f" of ≤{first.epochs} (early stopping)"
    peeked = value == "top1" and frame["peeked_top1"].notna().all()
    return {"key": key, "experiment": experiment, "chapter": first.extra.get("chapter"),
            "configuration": first.extra.get("configuration", "full"), "metric": metric,
            "mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else None,
            "n_seeds": len(values), "dataset": f"{first.dataset}, {first.image_size} px"
            + (f", {first.train_per_class} images/class" if first.train_per_class else ""),
            "model": first.model, "params_M": float(frame["params_M"].iloc[0]), "epochs": epochs,
            "gpu_minutes": float(frame["gpu_minutes"].sum()), "device": str(frame["device"].iloc[0]),
            "peeked_mean": float(frame["peeked_top1"].mean()) if peeked else None, "source_key": source_key,
            "runs": [store.run_key(r.config) for r in runs]}


def headlines(prefix: str, runs: Mapping[str, Sequence[Any]], *, title: str, source_key: Any = None,
              **kw: Any) -> list[dict[str, Any]]:
    """One :func:`headline` per label, key ``<prefix>_<label>``; ``source_key``: a key or a function of a config."""
    return [headline(f"{prefix}_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_"), group,
                     experiment=f"{title}: {label}",
                     source_key=source_key(group[0].config) if callable(source_key) else source_key, **kw)
            for label, group in runs.items() if group]


def headline_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All headline rows of all records, each with its record's configuration and run rows."""
    return [{**h, "record_runs": r.get("runs", []), "changed": r.get("changed", {})}
            for r in records for h in r.get("results", [])]


def _text(row: Mapping[str, Any] | None) -> str | None:
    if row is None or row.get("configuration") == "smoke":
        return None
    unit = " points" if str(row.get("metric", "")).startswith("gap") else " %"
    spread = f" ± {row['std']:.1f}" if row.get("std") is not None else ""
    return f"{row['mean']:.1f}{spread}{unit} ({row['n_seeds']} seed{'s' if row['n_seeds'] != 1 else ''})"


def texts(rows: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """The prose's text of each row (``key``, ``<key>_peeked``; None if smoke) and of each claim (``src_<key>``)."""
    out: dict[str, str | None] = {f"src_{k}": f"{c['value']:g}" + (" %" if "%" in c["metric"] else "")
                                  for k, c in SOURCE_CLAIMS.items()}
    for row in rows:
        out[row["key"]] = _text(row)
        if row.get("peeked_mean") is not None:
            gain = row["peeked_mean"] - row["mean"]
            out[f"{row['key']}_peeked"] = _text(row) and f"{row['peeked_mean']:.1f} % ({gain:+.1f} points)"
    return out


def best_text(rows: Sequence[Mapping[str, Any]], prefix: str) -> str | None:
    """The text of the best full row whose key starts with ``prefix``, with its run's label (:func:`headlines`'
    experiment after ``"<title>: "``); None: no such row."""
    best = max((r for r in rows if r["key"].startswith(prefix) and _text(r)), key=lambda r: r["mean"], default=None)
    return f"{_text(best)} with {best['experiment'].split(': ', 1)[-1]}" if best else None


def change_text(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> str | None:
    """``second`` minus ``first`` in points, ± the seeds' combined spread (None if either is missing or smoke)."""
    if _text(first) is None or _text(second) is None:
        return None
    spread = math.hypot(first.get("std") or 0.0, second.get("std") or 0.0)
    return f"{second['mean'] - first['mean']:+.1f} ± {spread:.1f} points"


def paragraph(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with its ``{name}`` fields from ``values``, or "" when one of them is missing or None."""
    names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    return template.format(**values) if all(values.get(n) is not None for n in names) else ""


def rerun_command(chapter: str, record: Mapping[str, Any]) -> str:
    """The papermill command that executes ``chapter`` again as ``record`` says it was (smoke file, ``-p``/``-y``)."""
    passed = [f"-y {shlex.quote(f'{k}: ' + json.dumps(c['value']))}" if isinstance(c["value"], (list, dict))
              else f"-p {k} {shlex.quote(str(c['value']))}" for k, c in record.get("changed", {}).items()
              if c["by"] != "smoke file"]
    smoke = [f"-f book/params/{chapter}.smoke.yaml"] if record.get("configuration") == "smoke" else []
    return " ".join(["papermill", f"book/{chapter}.ipynb", "out.ipynb", *smoke, *passed])


def _files(row: Mapping[str, Any]) -> str:
    entry = next((r.get("store_entry") for r in row.get("record_runs", []) if r.get("key") in row["runs"][:1]), None)
    folder = "../results/" + ("smoke/" if row.get("configuration") == "smoke" else "") + str(entry)
    return f"[config]({folder}/config.yaml) · [log]({folder}/log.txt) · " if entry else ""


def _cells(row: Mapping[str, Any]) -> dict[str, Any]:
    claim = SOURCE_CLAIMS.get(row.get("source_key") or "")
    model = f"{row.get('model')} ({row['params_M']:.1f} M)" if row.get("params_M") else row.get("model")
    epochs = f"{row.get('epochs')} epoch{'' if str(row.get('epochs')) == '1' else 's'}"
    return {"experiment": Markdown(f"{row['experiment']} ([ch. {int(row['chapter'][:2])}]({row['chapter']}.ipynb))"),
            "this book": _text(row) or "— (smoke run)", "source": f"{claim['value']:g} % ({claim['source']})"
            if claim else None, "setup": f"{row.get('dataset')}; {model}; {epochs}",
            "compute": f"{row.get('device')}, {row.get('gpu_minutes', 0):.1f} GPU min" if _text(row) else None,
            "files and command": Markdown(_files(row) + f"`{rerun_command(row['chapter'], row)}`")}


_COLUMNS = ("experiment", "this book", "source", "setup", "compute", "files and command")


def headline_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = _COLUMNS) -> Any:
    """Headline rows as a papers-with-code table: ours, the source's, setup, compute, files, the command."""
    return show(pd.DataFrame([_cells(r) for r in rows], columns=_COLUMNS), columns)


def results_csv(rows: Sequence[Mapping[str, Any]]) -> Any:
    """A link that downloads the headline rows as CSV (a data URI: no file beside the page); no smoke numbers."""
    from IPython.display import HTML

    frame = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("record_runs", "changed", "runs")},
                           "source": (SOURCE_CLAIMS.get(r.get("source_key") or "") or {}).get("value")}
                          | ({} if _text(r) else {"mean": None, "std": None, "peeked_mean": None}) for r in rows])
    data = base64.b64encode(frame.to_csv(index=False).encode()).decode()
    return HTML(f'<p><a download="results.csv" href="data:text/csv;base64,{data}">Download this table as CSV</a></p>')


def state(record: Mapping[str, Any]) -> str:
    """``"full"``, ``"smoke"`` or ``"not training"`` (a page that trains nothing)."""
    return record.get("configuration", "full") if record["chapter"] in TRAINING_CHAPTERS else "not training"


def _sources(text: str | None) -> list[str] | None:
    return None if text is None else ["".join(c["source"]) for c in json.loads(text)["cells"]]


def _commit(record: Mapping[str, Any]) -> str:
    """The record's commit, flagged when its chapter's library, smoke file or cells (not outputs) changed since."""
    env, chapter, root = record.get("environment", {}), record["chapter"], store.repo_root()
    commit = env.get("git_commit") or "unknown"
    text = f"`{commit}`" + (" with local changes" if env.get("git_dirty") else "")
    count = git_output(root, "rev-list", "--count", f"{commit}..HEAD") if commit != "unknown" else None
    files = count and git_output(root, "diff", "--name-only", commit, "--", "lib",
                                 str(smoke_file(chapter).relative_to(root)))
    if files is None:
        return text + "; git cannot compare it with HEAD"
    path, behind, lib = notebook(chapter), int(count), [p.startswith("lib/") for p in files.split()]
    old = _sources(git_output(root, "show", f"{commit}:{path.relative_to(root)}"))
    cells = path.is_file() and old != _sources(path.read_text())
    changed = [what for what, hit in (("library", any(lib)), ("smoke file", False in lib), ("notebook's cells", cells))
               if hit]
    ago = f"{behind} commit{'s' if behind != 1 else ''} behind HEAD"
    return text + (f"; **{ago}, its {' and '.join(changed)} changed since: execute it again**" if changed
                   else f"; {ago}, its code unchanged" if behind else "; HEAD")


def status_table(records: Sequence[Mapping[str, Any]]) -> Table:
    """One row per executed page: link, configuration, when and where, runs, commit, the command to execute it."""
    rows = [{"page": Markdown(f"[{int(r['chapter'][:2])}. {r.get('title') or r['chapter']}]({r['chapter']}.ipynb)"),
             "configuration": state(r), "runs": provenance_text(r.get("runs", [])), "commit": Markdown(_commit(r)),
             "executed": f"{(r.get('finished_at') or '')[:10]}, {r['environment']['device']}, "
                         f"{float(r.get('minutes') or 0):.1f} min",
             "execute again": Markdown("`tools/execute_chapters" + (" --smoke" if state(r) == "smoke" else "")
                                       + f" --chapters {r['chapter']}`")} for r in records]
    return show(pd.DataFrame(rows, columns=["page", "configuration", "executed", "runs", "commit", "execute again"]))


def _links(names: Sequence[str]) -> str:
    links = [f'<a href="{n}.html">{int(n[:2])}</a>' for n in names]
    return ", ".join(links[:-1]) + (" and " if len(links) > 1 else "") + links[-1]


def glance(records: Sequence[Mapping[str, Any]], benchmarks: pd.DataFrame) -> Any:
    """The box "at a glance" as HTML (pasted into other pages): what is measured and what still awaits a GPU."""
    from IPython.display import HTML

    by_state = {s: [r["chapter"] for r in records if state(r) == s] for s in ("full", "smoke")}
    missing = [c for c in TRAINING_CHAPTERS if c not in by_state["full"] + by_state["smoke"]]
    kind = benchmarks.attrs.get("kind", "none")
    speed = "nothing of the training loop's speed yet" if kind == "none" else f"the training loop's speed on " \
        f"{benchmarks['device'].iloc[0]}" + (" (tiny CPU settings)" if kind == "cpu" else "")
    measured = ('the model sizes and costs of <a href="02_architecture.html">chapter 2</a> (computed from the models), '
                f"the sources' numbers (quoted), {speed}" + (f", and the results of chapters {_links(by_state['full'])}"
                                                             if by_state["full"] else ""))
    waiting = ([f"chapters {_links(by_state['smoke'])} ran only in the smoke configuration: their numbers show that "
                "the code runs, not results"] if by_state["smoke"] else []) + \
        ([f"chapters {_links(missing)} have not been executed"] if missing else [])
    if kind != "gpu":
        waiting.append('the training loop\'s speed on a GPU (<a href="09_performance.html">chapter 9</a>)')
    return HTML('<div class="admonition note"><p class="admonition-title">Status at a glance</p>'
                f"<p><b>Measured:</b> {measured}.</p><p><b>Awaiting a GPU:</b> "
                f"{'; '.join(waiting) if waiting else 'nothing: every training chapter has results'}.</p></div>")
