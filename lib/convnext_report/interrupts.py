"""SIGTERM as an exception, so a process that is asked to stop still cleans up (run folders marked
failed, worker processes stopped, nothing half-written)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Terminated", "die_with_parent", "signals_deferred", "sigterm_raises"]

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


class Received:
    """The signals a :func:`signals_deferred` block received so far; true once there is one."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.signals)


@contextmanager
def signals_deferred(on_signal: Callable[[], None]) -> Iterator[Received]:
    """Inside the block Ctrl-C (SIGINT) and SIGTERM only call ``on_signal()`` and are recorded in the
    yielded :class:`Received`; the block's end hands the first one to the handler it had before
    (Ctrl-C then raises ``KeyboardInterrupt``, SIGTERM :class:`Terminated` or the caller's handler).

    For code in other libraries' locks (a process pool's queues): an exception raised by a signal
    handler in the middle of them can leave a lock held and hang the interpreter's exit.
    ``on_signal`` runs inside the handler, so it must neither raise nor take locks (``os.kill`` is
    fine); the block should stop its work once ``Received`` is true. An ignored signal stays ignored.
    Main thread only; in other threads (where signal handlers cannot be set) the block runs plain.
    """
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.signals.append(signum)
        on_signal()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}  # an ignored signal stays ignored
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        if received:
            _deliver(received.signals[0], previous[received.signals[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Run what ``handler`` (as returned by ``signal.signal``) would have done on ``signum``."""
    if callable(handler):
        handler(signum, None)
    elif handler != signal.SIG_IGN:  # SIG_DFL, or None (set outside Python): stop, with cleanup
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def die_with_parent(parent: int) -> None:
    """In a child process: get SIGTERM when the parent dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``),
    and exit at once if the parent ``parent`` (a pid) is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
