"""Command line: ``python -m convnext_report train [--config FILE.yaml] [key=value ...]``, ``plan``, ``publish``.

``train``: values come from the defaults, then the YAML file, then the ``key=value`` overrides
(see :func:`convnext_report.config.load_config`). Under ``torchrun`` the same command
trains with DDP on every process. ``--help`` lists every key with its default.

``plan`` and ``publish`` are the book's (the report layer's :mod:`convnext_report.report.commands`).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import signal
import sys
from dataclasses import fields

import yaml

from . import config as config_module
from .config import TrainConfig, load_config
from .interrupts import Terminated
from .packing import follow_parent
from .training import train

# the command line sits above both layers: ``plan`` and ``publish`` are the book's report layer's
from .report.commands import add_commands

__all__ = ["build_parser", "main"]


def _key_help() -> str:
    """One line per config key: name, default, the comment written beside the field, and what it accepts."""
    comments = dict(re.findall(r"^\s+(\w+):[^#\n]*#:\s*(.*)$", inspect.getsource(config_module.TrainConfig), re.M))
    defaults = TrainConfig()
    width = max(len(f.name) for f in fields(TrainConfig))
    lines = ["config keys (key=value, values in YAML: null, true, 1e-3, n2m9, ...):"]
    for f in fields(TrainConfig):
        value = yaml.safe_dump(getattr(defaults, f.name), default_flow_style=True).removesuffix("\n...\n").strip()
        line = f"  {f.name:<{width}}  default {value}"
        if f.name in comments:
            line += f"  -- {comments[f.name]}"
        lines.append(f"{line}  [{config_module.allowed_values(f.name)}]")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m convnext_report", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train one run and write its run folder",
        description="Train one run; prints 'run folder: PATH' at the end.",
        epilog=_key_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="FILE.yaml", help="YAML file of key: value pairs")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")
    train.set_defaults(command_parser=train)  # errors in the config show the train usage
    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m convnext_report`` and the ``convnext-report`` script."""
    follow_parent()  # a child of packing.train_many: SIGTERM when the parent dies
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "train":
        return args.run(args)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as err:  # before any data is loaded or folder made
        args.command_parser.error(f"{err}\n(`{args.command_parser.prog} --help` lists every key with its default)")
    try:
        run = train(cfg)
    except Terminated:  # SIGTERM: the run folder says "failed (terminated)"; resume=true continues it
        print(f"terminated: resume with run_name={cfg.run_name or '<the printed run folder>'} resume=true",
              file=sys.stderr, flush=True)
        return 128 + signal.SIGTERM
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: only rank 0 reports
        print(f"run folder: {run.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
