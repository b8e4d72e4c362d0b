"""SIGTERM as an exception, raised where cleanup can run."""

from __future__ import annotations

import signal

import pytest

from convnext_report.interrupts import Terminated, sigterm_raises


@pytest.fixture(autouse=True)
def _default_handlers():
    old_term, old_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGTERM, old_term)
    signal.signal(signal.SIGINT, old_int)


def test_sigterm_raises_terminated_with_exit_status_143_and_restores_default():
    with pytest.raises(Terminated) as err, sigterm_raises():
        signal.raise_signal(signal.SIGTERM)
    assert err.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_raises_keeps_a_handler_the_program_installed():
    seen = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    with sigterm_raises():
        signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM]
