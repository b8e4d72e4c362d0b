"""Validating a dataclass of settings: each field's type from its annotation, then a rule per field.

Rules are data (:class:`Rule`: an interval, a set of choices, a pattern, a parser); rules that tie
fields together are :class:`CrossRule`. :class:`Schema` checks an instance and words every problem
as ``"key: what is wrong; allowed: ..."`` so a user can fix all of them at once. :func:`renamed`
reads deprecated keys under their new names.
"""

from __future__ import annotations

import math
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import yaml

__all__ = [
    "ANY", "FRACTION", "NON_EMPTY", "NON_NEGATIVE", "POSITIVE_INT", "CrossRule", "Rule", "Schema", "format_problems",
    "interval", "matches", "one_of", "parses", "renamed",
]


@dataclass(frozen=True)
class Rule:
    """What a key's value may be beyond its type.

    ``allowed`` describes the valid values for messages (``{type}`` becomes the key's type, e.g.
    "an integer"); ``problem(key, value)`` says what is wrong with a well-typed value, or ``None``.
    """

    allowed: str
    problem: Callable[[str, Any], str | None]


@dataclass(frozen=True)
class CrossRule:
    """A rule tying ``keys`` together, checked once each of them is valid on its own.

    ``problem(settings)`` returns ``(key, what is wrong, allowed)`` or ``None``.
    """

    keys: tuple[str, ...]
    problem: Callable[[Any], tuple[str, str, str] | None]


def interval(text: str) -> Rule:
    """Numbers in an interval written as ``"[0, 1)"``, ``"(0, inf)"``, ``"[1, inf)"``."""
    m = re.fullmatch(r"([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])", text)
    if m is None:
        raise ValueError(f"bad interval {text!r}")
    lo, hi = float(m[2]), float(m[3])
    lo_ok = (lambda v: lo < v) if m[1] == "(" else (lambda v: lo <= v)
    hi_ok = (lambda v: v < hi) if m[4] == ")" else (lambda v: v <= hi)
    if hi == math.inf:
        allowed = f"{{type}} {'>' if m[1] == '(' else '>='} {m[2]}"
    else:
        allowed = f"{{type}} in {text}"
    return Rule(allowed, lambda key, v: None if lo_ok(v) and hi_ok(v) else f"{v!r} is out of range")


def one_of(choices: Iterable[Any]) -> Rule:
    """One of ``choices`` (a tuple, or a registry's keys)."""
    values = tuple(choices)
    return Rule(", ".join(map(str, values)), lambda key, v: None if v in values else f"unknown {key} {v!r}")


def matches(pattern: str, allowed: str) -> Rule:
    """A string that fully matches the regular expression ``pattern``."""
    regex = re.compile(pattern)
    return Rule(allowed, lambda key, v: None if regex.fullmatch(v) else f"{v!r} is not valid")


def parses(parse: Callable[[Any], object], allowed: str) -> Rule:
    """A value that ``parse`` accepts (its ``ValueError`` message says what is wrong)."""

    def problem(key: str, value: Any) -> str | None:
        try:
            parse(value)
        except (ValueError, TypeError, yaml.YAMLError) as err:
            return str(err)
        return None

    return Rule(allowed, problem)


ANY = Rule("{type}", lambda key, v: None)  #: any value of the key's type
POSITIVE_INT = interval("[1, inf)")
NON_NEGATIVE = interval("[0, inf)")
FRACTION = interval("[0, 1)")
NON_EMPTY = matches(r"(?s).*\S.*", "a non-empty string")

_TYPE_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                                dict: "a mapping", list: "a list"}


def _field_type(hint: Any) -> tuple[type, bool]:
    """(base type, ``None`` allowed) of an annotation such as ``int | None`` or ``dict[str, Any]``."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    args = typing.get_args(hint) if union else (hint,)
    (base,) = [a for a in args if a is not type(None)]
    return typing.get_origin(base) or base, type(None) in args


def _type_problem(kind: type, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (bool is not an int; an int is a float; floats are finite)."""
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if ok:
        return None
    what = "a finite number" if kind is float and isinstance(value, float) else _TYPE_NAMES[kind]
    return f"must be {what}, got {value!r} ({type(value).__name__})"


class Schema:
    """The types (from ``cls``'s annotations), rules and cross rules of a dataclass of settings."""

    def __init__(self, cls: type, rules: Mapping[str, Rule], cross_rules: tuple[CrossRule, ...] = ()) -> None:
        self.types = {name: _field_type(hint) for name, hint in typing.get_type_hints(cls).items()}
        missing = sorted(set(self.types) ^ set(rules))
        if missing:  # a new key needs its rule
            raise RuntimeError(f"the rules and {cls.__name__} disagree on key(s) {missing}: add one rule per key")
        self.rules, self.cross_rules = rules, cross_rules

    def allowed(self, key: str) -> str:
        """What ``key`` accepts, in words (e.g. "null or an integer >= 1")."""
        kind, optional = self.types[key]
        return ("null or " if optional else "") + self.rules[key].allowed.format(type=_TYPE_NAMES[kind])

    def key_problem(self, key: str, value: Any) -> str | None:
        """``"key: what is wrong; allowed: ..."`` for a bad value of ``key``, else ``None``."""
        kind, optional = self.types[key]
        if value is None and optional:
            return None
        wrong = _type_problem(kind, value) or self.rules[key].problem(key, value)
        return f"{key}: {wrong}; allowed: {self.allowed(key)}" if wrong else None

    def problems(self, settings: Any) -> list[str]:
        """Every problem of ``settings``, one ``"key: what is wrong; allowed: ..."`` each (empty: valid)."""
        found = {f.name: self.key_problem(f.name, getattr(settings, f.name)) for f in fields(settings)}
        out = [p for p in found.values() if p]
        for rule in self.cross_rules:
            problem = None if any(found[k] for k in rule.keys) else rule.problem(settings)
            if problem:
                key, wrong, allowed = problem
                out.append(f"{key}: {wrong}; allowed: {allowed}")
        return out


def format_problems(problems: list[str], what: str = "config") -> str:
    """One error message listing every problem."""
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return f"invalid {what} ({count}; fix the keys named below):\n  " + "\n  ".join(problems)


def renamed(values: Mapping[str, Any], deprecated: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """``values`` with each deprecated key under its new name, with a ``FutureWarning`` saying so; giving a
    setting under both names is an error. ``deprecated``: old key -> (new key, why the name changed)."""
    out = dict(values)
    for old, (new, why) in deprecated.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"config keys {old!r} and {new!r} are the same setting: give only {new!r}")
        warnings.warn(f"config key {old!r} is deprecated: use {new!r} ({why})", FutureWarning, stacklevel=3)
        out[new] = out.pop(old)
    return out
