"""SIGTERM as an exception while a run is open, so the run folder is marked failed before exiting."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["RunTerminated", "sigterm_raises"]


class RunTerminated(BaseException):
    """The process received SIGTERM during a run (the run folder is marked failed first)."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`RunTerminated` inside the block (main thread, default handler only:
    a program that installed its own handler keeps it)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunTerminated("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
