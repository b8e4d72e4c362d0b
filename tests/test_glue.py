"""Glued values: the IPython-only fallback writes exactly what myst-nb's glue writes."""

from __future__ import annotations

import builtins

import pytest

from convnext_report.report import glue as glue_mod

myst_glue = pytest.importorskip("myst_nb.ext.glue")


def _calls(monkeypatch: pytest.MonkeyPatch, target, attr: str) -> list:
    calls: list = []
    monkeypatch.setattr(target, attr, lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


@pytest.mark.parametrize("value", ["71.3 ± 0.4 % (3 seeds)", 12.5])
@pytest.mark.parametrize("display", [False, True])
def test_fallback_matches_myst_nb(monkeypatch: pytest.MonkeyPatch, value, display: bool) -> None:
    import IPython.display

    expected = _calls(monkeypatch, myst_glue, "ipy_display")
    glue_mod.glue("key", value, display)  # myst-nb is installed here
    real_import = builtins.__import__

    def no_myst_nb(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst_nb)
    fallback = _calls(monkeypatch, IPython.display, "display")
    glue_mod.glue("key", value, display)
    assert len(expected) == 1 and fallback == expected
    bundle = expected[0][0][0]
    assert all(mime.startswith("" if display else glue_mod.GLUE_PREFIX) for mime in bundle)
    assert expected[0][1]["metadata"]["scrapbook"]["name"] == "key"
