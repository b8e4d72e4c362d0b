"""Command line: ``python -m convnext_report train [--config FILE.yaml] [key=value ...]`` and ``... plan``.

``train``: values come from the defaults, then the YAML file, then the ``key=value`` overrides, in
any order (see :func:`convnext_report.config.load_config`); with ``resume=true`` the run folder's
``config.yaml`` takes the defaults' place. Under ``torchrun`` the same command trains with DDP on
every process. ``--help`` lists every key with its default, in plain text.

``plan``: the book's GPU budget, per chapter of its full configuration (the report layer's
:mod:`convnext_report.report.plan`); the last line is ``total: <seconds> s``.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import fields
from pathlib import Path

from . import config as config_module
from .config import TrainConfig, format_value, read_settings
from .runfolder import resume_config
from .worker import run

# the command line sits above both layers: ``plan`` is a command of the book's report layer
from .report import plan as book_plan
from .report.estimate import load_benchmarks
from .report.paths import repo_root

__all__ = ["build_parser", "main"]


def _key_help() -> str:
    """One line per config key: name, default, the comment written beside the field, and what it accepts."""
    comments = dict(re.findall(r"^\s+(\w+):[^#\n]*#:\s*(.*)$", inspect.getsource(config_module.TrainConfig), re.M))
    defaults = TrainConfig()
    width = max(len(f.name) for f in fields(TrainConfig))
    lines = ["config keys (key=value, values in YAML: null, true, 1e-3, n2m9, ...):"]
    for f in fields(TrainConfig):
        line = f"  {f.name:<{width}}  default {format_value(getattr(defaults, f.name))}"
        if f.name in comments:
            line += f"  -- {comments[f.name]}"
        lines.append(f"{line}  [{config_module.allowed_values(f.name)}]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convnext_report",
                                     description="Train one run (train), or show the book's GPU budget (plan).")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train one run and write its run folder",
        description="Train one run; prints 'run folder: PATH' at the end. Options and key=value pairs may come\n"
                    "in any order. With resume=true the keys not given are read from the run folder's config.yaml,\n"
                    "and a given key that differs from it is refused (a run continues with its own settings).",
        epilog=_key_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="FILE.yaml", help="YAML file of key: value pairs")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")
    train.set_defaults(command_parser=train)  # errors in the config show the train usage
    plan = commands.add_parser(
        "plan",
        help="the book's GPU budget: runs, images and estimated seconds per chapter",
        description="Per chapter of the book's full configuration (the defaults of each notebook's parameters "
                    "cell): runs, images processed and estimated GPU seconds; the last line is 'total: N s'.",
    )
    plan.add_argument("--smoke", action="store_true", help="the smoke configuration instead of the full one")
    plan.add_argument("--book", metavar="DIR", help="folder of the chapter notebooks (default: <repo>/book)")
    plan.add_argument("--benchmarks", metavar="DIR",
                      help="measured throughput, *.json rows (default: <repo>/benchmarks/results)")
    plan.add_argument("--packed", type=int, default=1, metavar="K",
                      help="runs trained side by side on one GPU (uses the benchmarks' packed-K rows)")
    plan.add_argument("--runs", action="store_true", help="also list every run")
    plan.set_defaults(command_parser=plan)
    return parser


def _plan(args: argparse.Namespace) -> int:
    folder = Path(args.benchmarks) if args.benchmarks else repo_root() / "benchmarks" / "results"
    benchmarks = load_benchmarks(folder)
    plans = book_plan.build_plan(book=args.book, smoke=args.smoke, benchmarks=benchmarks, packed=args.packed)
    if args.runs:
        for p in plans:
            for r in p.runs:
                note = f"  (counted in {r.shared_with})" if r.shared_with else "  (stored)" if r.stored else ""
                print(f"{r.chapter}  {r.group}  {r.label}  seed {r.seed}  {r.key[:8]}  {r.images:,} images  "
                      f"{r.seconds:.0f} s{note}")
        print()
    print(book_plan.format_plan(plans, benchmarks))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m convnext_report`` and the ``convnext-report`` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_known_args(argv)[0]
    if args.command == "plan":
        return _plan(parser.parse_args(argv))
    # options and key=value pairs in any order (argparse cannot parse a subcommand's arguments intermixed)
    args = args.command_parser.parse_intermixed_args(argv[argv.index(args.command) + 1:])
    try:
        cfg = resume_config(read_settings(args.config, args.overrides))
    except (ValueError, FileNotFoundError) as err:  # before any data is loaded or folder made
        args.command_parser.error(f"{err}\n({args.command_parser.prog} --help lists every key with its default)")
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
