"""The report layer's commands: ``python -m convnext_report plan`` (:mod:`.plan`) and ``publish``
(:mod:`.store`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .plan import build_plan, format_plan, read_benchmarks
from .store import PublishError, publish

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``plan`` and ``publish`` to the command line's subcommands (each sets ``run`` to its handler)."""
    plan = commands.add_parser(
        "plan", help="the book's GPU budget: runs, images and estimated seconds per chapter",
        description="Per chapter of the book's full configuration (the defaults of each notebook's parameters "
                    "cell): runs, images processed and estimated GPU seconds; the last line is 'total: N s'.")
    plan.add_argument("--smoke", action="store_true", help="the smoke configuration (book/params/*.smoke.yaml)")
    plan.add_argument("-f", "--parameters", action="append", default=[], metavar="FILE.yaml",
                      help="parameter file (as papermill -f), each value to the chapters that declare it")
    plan.add_argument("--benchmarks", metavar="DIR", help="measured throughput, *.json rows "
                                                          "(default: <repo>/benchmarks/results)")
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
