"""The report layer's commands: ``python -m convnext_report plan``, ``publish`` and ``runs`` (``runs compare``)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..runfolder import Run, load_run, read_json
from ..summary import run_summary
from . import store
from .plan import build_plan, format_plan, read_benchmarks
from .store import PublishError, publish

__all__ = ["METRICS", "add_commands", "compare", "find_run", "list_runs"]

_LISTED = {"key": "key", "where": "where", "chapter": "chapter", "label": "label", "seed": "seed",
           "configuration": "configuration", "top1": "test top-1 %", "epochs_run": "epochs", "minutes": "minutes"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``plan``, ``publish`` and ``runs`` to the command line's subcommands (each sets ``run``)."""
    plan = commands.add_parser(
        "plan", help="the book's GPU budget: runs, images and estimated seconds per chapter",
        description="Per chapter of the book's full configuration (the defaults of each notebook's parameters "
                    "cell): runs, images processed and estimated GPU seconds; the last line is 'total: N s'.")
    plan.add_argument("--smoke", action="store_true", help="the smoke configuration (book/params/*.smoke.yaml)")
    plan.add_argument("-f", "--parameters", action="append", default=[], metavar="FILE.yaml",
                      help="parameter file (as papermill -f), each value to the chapters that declare it")
    plan.add_argument("--benchmarks", metavar="DIR",
                      help="measured throughput, *.json rows (default: <repo>/benchmarks/results)")
    plan.add_argument("--packed", type=int, default=1, metavar="K",
                      help="runs trained side by side on one GPU (uses the benchmarks' packed-K rows)")
    plan.add_argument("--runs", action="store_true", help="also list every run (a stored one: its measured seconds)")
    plan.set_defaults(run=_plan)
    pub = commands.add_parser(
        "publish", help="copy what chapters used (record, store entries, executed notebook) into the repository",
        description="Copy each chapter's local record (<runs>/records) into book/records/, the store entries it "
                    "lists into results/ and, with --notebook, its executed notebook to book/<chapter>.ipynb. "
                    "Everything is checked first; a refused call changes nothing.")
    pub.add_argument("chapters", nargs="+", metavar="CHAPTER", help="e.g. 04_baseline")
    pub.add_argument("--notebook", metavar="PATH", help="the executed notebook (one chapter only)")
    pub.set_defaults(run=_publish)
    runs = commands.add_parser(
        "runs", help="list finished runs (result store and run folders), or compare two",
        description="List every finished run: the result store's entries (local layer, then the committed "
                    "results/) and the run folders under the runs folder, with key, chapter, label, seed, test "
                    "top-1, epochs and wall time. 'runs compare A B' shows two runs' settings that differ and "
                    "their numbers side by side; A and B are key prefixes or run folder names.")
    runs.set_defaults(run=_runs)
    pair = runs.add_subparsers(dest="runs_command", metavar="compare").add_parser(
        "compare", help="two runs side by side", description="The settings that differ and the numbers of two "
        "runs, each named by a key prefix (as 'runs' lists it) or a run folder.")
    pair.add_argument("a", metavar="A", help="key prefix or run folder")
    pair.add_argument("b", metavar="B", help="key prefix or run folder")
    pair.set_defaults(run=_compare)


def _plan(args: argparse.Namespace) -> int:
    benchmarks = read_benchmarks(args.benchmarks)
    plans = build_plan(smoke=args.smoke, files=args.parameters, benchmarks=benchmarks, packed=args.packed)
    print(format_plan(plans, benchmarks, runs=args.runs))
    return 0


def _publish(args: argparse.Namespace) -> int:
    if args.notebook and len(args.chapters) != 1:
        print("publish: --notebook goes with exactly one chapter", file=sys.stderr)
        return 2
    try:
        written = publish(args.chapters, notebooks={args.chapters[0]: Path(args.notebook)} if args.notebook else None)
    except PublishError as err:
        print(err, file=sys.stderr)
        return 1
    for path in written:
        print(f"published {path}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    found = list_runs()
    if found.empty:
        print("no finished runs: the result store and the runs folder hold none")
        return 0
    shown = found[list(_LISTED)].assign(key=found["key"].str[:8]).rename(columns=_LISTED)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    found = list_runs()
    try:
        a, b = find_run(args.a, found), find_run(args.b, found)
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    config, metrics = compare(a, b, names=(args.a, args.b))
    print(f"settings that differ:\n{config.to_string(index=False)}" if len(config) else "settings: the same")
    print("\n" + metrics.to_string(index=False))
    return 0


#: what ``runs compare`` shows of each run, after the config keys that differ
METRICS = ["top1", "top5", "selected_epoch", "epochs_run", "selection_top1", "gap", "minutes", "device", "trained"]


def _row(run: Run, where: str, meta: dict) -> dict:
    extra, summary = run.config.extra or {}, run_summary(run)
    try:
        key = meta.get("key") or store.run_key(run.config)
    except FileNotFoundError:  # its pretrained file is gone: it cannot be identified
        key = ""
    return {"key": key, "where": where, "chapter": meta.get("chapter") or extra.get("chapter", "—"),
            "label": meta.get("label") or extra.get("label") or run.path.name, "seed": run.config.seed,
            "configuration": meta.get("configuration") or extra.get("configuration", "—"),
            **{m: summary[m] for m in METRICS}, "folder": store.display_path(run.path), "path": str(run.path)}


def list_runs() -> pd.DataFrame:
    """One row per finished run: the store's entries (each key once, local first), then unstored run folders."""
    local = store.local_dir("results")
    found = [(e.path, "local" if e.path.is_relative_to(local) else "committed", e.meta)
             for smoke in (False, True) for e in store.entries(smoke=smoke)]
    found += [(r.parent, "run folder", {}) for r in sorted(store.runs_dir().glob("**/record.json"))
              if not r.parent.is_relative_to(local) and read_json(r).get("status") == "finished"]
    rows = []
    for folder, where, meta in found:
        try:
            rows.append(_row(load_run(folder), where, meta))
        except (ValueError, KeyError, FileNotFoundError) as err:  # written by an older version of the library
            warnings.warn(f"{store.display_path(folder)} is left out: it cannot be read ({err})", stacklevel=2)
    frame = pd.DataFrame(rows)
    return frame[~frame["key"].duplicated() | (frame["key"] == "")].reset_index(drop=True) if rows else frame


def find_run(name: str, runs: pd.DataFrame) -> Run:
    """The run whose key starts with ``name``, or whose folder is named ``name`` (or is the path ``name``)."""
    if Path(name).is_dir() and (Path(name) / "record.json").is_file():
        return load_run(name)
    hits = runs[runs["key"].str.startswith(name) | runs["path"].map(lambda p: Path(p).name == name)] \
        if len(runs) else runs
    if len(hits) != 1:
        what = "matches no finished run" if hits.empty else f"matches {len(hits)} runs ({', '.join(hits['folder'])})"
        raise LookupError(f"{name!r} {what}: give a longer key or a folder (`python -m convnext_report runs` lists "
                          "them)")
    return load_run(hits["path"].iloc[0])


def compare(a: Run, b: Run, names: Sequence[str] = ("A", "B")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the config keys whose values differ, the metrics) of two runs, side by side."""
    ca, cb = a.config.to_dict(), b.config.to_dict()
    keys = [k for k in ca if ca[k] != cb.get(k) and k not in ("out_dir", "run_name", "data_dir")]
    config = pd.DataFrame({"key": keys, names[0]: [ca[k] for k in keys], names[1]: [cb.get(k) for k in keys]})
    shown = [{m: f"{v:.2f}" if isinstance(v, float) else v for m, v in run_summary(r).items()} for r in (a, b)]
    return config, pd.DataFrame({"metric": METRICS, **{n: [s[m] for m in METRICS] for n, s in zip(names, shown)}})
