"""The environment switches of a chapter: smoke, publishing, training allowed, deadline.

===================================  ==========================================================
variable                             effect
===================================  ==========================================================
``CONVNEXT_REPORT_SMOKE=1``          the smoke configuration (tiny subsets, a few short epochs)
``CONVNEXT_REPORT_PUBLISH=1``        new store entries and records go into the repository
                                     (``results/``, ``book/records/``) instead of ``runs/``
``CONVNEXT_REPORT_TRAIN=0``          never train: a run missing from the store is an error
                                     (re-rendering stored results, e.g. on a CPU)
``CONVNEXT_REPORT_DEADLINE=<unix>``  never start a run whose estimated time ends after this
===================================  ==========================================================
"""

from __future__ import annotations

import os
import time

__all__ = ["DEADLINE_ENV", "PUBLISH_ENV", "SMOKE_ENV", "TRAIN_ENV", "deadline", "publishing", "seconds_left",
           "smoke_from_env", "training_allowed"]

SMOKE_ENV = "CONVNEXT_REPORT_SMOKE"
PUBLISH_ENV = "CONVNEXT_REPORT_PUBLISH"
TRAIN_ENV = "CONVNEXT_REPORT_TRAIN"
DEADLINE_ENV = "CONVNEXT_REPORT_DEADLINE"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(variable: str, default: bool) -> bool:
    value = os.environ.get(variable, "").strip().lower()
    if not value:
        return default
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(f"${variable}={value!r}: use 1/true/yes/on or 0/false/no/off")


def smoke_from_env() -> bool:
    """True when ``CONVNEXT_REPORT_SMOKE`` is set to 1/true/yes/on."""
    return _flag(SMOKE_ENV, False)


def publishing() -> bool:
    """True when ``CONVNEXT_REPORT_PUBLISH`` is on: results go into the repository."""
    return _flag(PUBLISH_ENV, False)


def training_allowed() -> bool:
    """False when ``CONVNEXT_REPORT_TRAIN`` is off: only stored runs may be used."""
    return _flag(TRAIN_ENV, True)


def deadline() -> float | None:
    """``CONVNEXT_REPORT_DEADLINE`` as a unix time, or None."""
    value = os.environ.get(DEADLINE_ENV, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"${DEADLINE_ENV}={value!r} is not a unix time (seconds since 1970, e.g. "
                         f"$(( $(date +%s) + 540 )))") from None


def seconds_left() -> float | None:
    """Seconds until the deadline (negative once past), or None without one."""
    end = deadline()
    return None if end is None else end - time.time()
