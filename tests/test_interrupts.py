"""SIGTERM and Ctrl-C handling: raised where cleanup can run, deferred where locks are held."""

from __future__ import annotations

import signal

import pytest

from convnext_report.interrupts import Terminated, signals_deferred, sigterm_raises


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


def test_deferred_sigterm_runs_the_callback_then_raises_at_the_end_of_the_block():
    calls, after = [], []
    with pytest.raises(Terminated), signals_deferred(lambda: calls.append("kill")) as stop:
        assert not stop
        signal.raise_signal(signal.SIGTERM)
        after.append(bool(stop))  # the block goes on: it decides where to stop
    assert calls == ["kill"] and after == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_deferred_ctrl_c_becomes_keyboard_interrupt_at_the_end():
    with pytest.raises(KeyboardInterrupt), signals_deferred(lambda: None) as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.signals == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_signal_goes_to_the_outer_handler_once():
    outer = []
    with sigterm_raises():
        signal.signal(signal.SIGTERM, lambda signum, frame: outer.append(signum))
        with signals_deferred(lambda: None):
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert outer == []
        assert outer == [signal.SIGTERM]


def test_no_signal_no_effect():
    with signals_deferred(lambda: pytest.fail("no signal was sent")) as stop:
        pass
    assert not stop and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_ctrl_c_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with signals_deferred(lambda: pytest.fail("an ignored signal reached the block")) as stop:
        signal.raise_signal(signal.SIGINT)
    assert not stop and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
