"""Glue a value for ``{glue:text}`key``` in the prose: myst-nb's ``glue``, or without myst-nb IPython alone."""

from __future__ import annotations

from typing import Any

__all__ = ["GLUE_PREFIX", "glue"]

GLUE_PREFIX = "application/papermill.record/"  #: myst-nb's mime prefix of a value glued without display


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value``'s display form under ``name`` in the current cell's outputs (myst-nb's format)."""
    try:
        from myst_nb import glue as myst_glue  # optional: only the book extra installs myst-nb
    except ImportError:
        myst_glue = None
    if myst_glue is not None:
        return myst_glue(name, value, display)
    from IPython.core.formatters import format_display_data  # local: IPython only inside a kernel
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
    ipy_display({prefix + mime: data for mime, data in bundle.items()}, raw=True, metadata=metadata)
