"""Command line: ``python -m convnext_report train [--config FILE.yaml] [key=value ...]``, ``plan``, ``publish``.

``train``: values come from the defaults, then the YAML file, then the ``key=value`` overrides, in
any order (see :func:`convnext_report.config.load_config`); with ``resume=true`` the run folder's
``config.yaml`` takes the defaults' place. Under ``torchrun`` the same command trains with DDP on
every process. ``--help`` lists every key with its default, in plain text.

``plan`` and ``publish`` are the book's (the report layer's :mod:`convnext_report.report.commands`).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import fields

from . import config as config_module
from .config import TrainConfig, format_value, read_settings
from .runfolder import resume_config
from .worker import run

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
    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m convnext_report`` and the ``convnext-report`` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_known_args(argv)[0]
    if args.command != "train":
        args = parser.parse_args(argv)
        return args.run(args)
    # options and key=value pairs in any order (argparse cannot parse a subcommand's arguments intermixed)
    args = args.command_parser.parse_intermixed_args(argv[argv.index(args.command) + 1:])
    try:
        cfg = resume_config(read_settings(args.config, args.overrides))
    except (ValueError, FileNotFoundError) as err:  # before any data is loaded or folder made
        args.command_parser.error(f"{err}\n({args.command_parser.prog} --help lists every key with its default)")
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
