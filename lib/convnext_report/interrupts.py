"""SIGTERM as an exception, so a process that is asked to stop still cleans up (run folders marked
failed, worker processes stopped, nothing half-written); child processes that die with their parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Terminated", "die_with_parent", "sigterm_raises"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Terminated(SystemExit):
    """The process received SIGTERM. Raised in the main thread, so ``finally`` blocks and handlers run;
    uncaught, the process exits with status 143 (128 + SIGTERM), as if the signal had killed it."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`Terminated` (main thread only, and only where SIGTERM has
    its default action: a program that installed its own handler, or an outer block, keeps it)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def die_with_parent(parent: int) -> None:
    """In a child process: get SIGTERM when the parent dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``),
    and exit at once if the parent ``parent`` (a pid) is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
