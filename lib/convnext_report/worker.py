"""``python -m convnext_report.worker CONFIG.yaml --parent-pid PID``: one run of a packed sweep, started by
:func:`convnext_report.packing.train_many`; the core's own entry point (nothing it imports is the book's
layer), and it stops when process ``PID`` dies. :func:`run` is also the body of the ``train`` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .config import TrainConfig, load_config
from .errors import UserError
from .interrupts import Terminated, die_with_parent
from .training import train

__all__ = ["main", "run"]


def run(config: TrainConfig) -> int:
    """Train ``config`` as a command and return its exit status: 0 after printing ``run folder: PATH``;
    1 after printing a refusal's message as one ``error:`` line; 143 after SIGTERM, saying how to resume."""
    try:
        result = train(config)
    except Terminated:  # the run folder says "failed (terminated)"; resume=true continues it
        print(f"terminated: resume with run_name={config.run_name or '<the printed run folder>'} resume=true",
              file=sys.stderr, flush=True)
        return 128 + signal.SIGTERM
    except (UserError, OSError) as err:  # a bad input, or a full disk: the message says what to do
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: only rank 0 reports
        print(f"run folder: {result.path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convnext_report.worker",
                                     description="Train the run CONFIG.yaml describes (one run of a packed sweep).")
    parser.add_argument("config", metavar="CONFIG.yaml", help="the run's config")
    parser.add_argument("--parent-pid", type=int, required=True, metavar="PID", help="stop when this process dies")
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    return run(load_config(args.config))


if __name__ == "__main__":
    sys.exit(main())
