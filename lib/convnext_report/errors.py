"""The one base class of the errors a user can fix: a bad input or a folder in a state we refuse to touch."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A bad input or state the user can fix; the message names it and says what to do.
    Command-line entry points print it as one ``error:`` line, without a traceback."""
