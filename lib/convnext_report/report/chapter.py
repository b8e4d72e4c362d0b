"""What every book chapter shares: parameters, the smoke switch, runs and the chapter record.

A chapter notebook has one ``parameters`` cell (papermill) holding the *full* configuration,
then calls :func:`start`, which

- collects those parameters from the notebook namespace,
- applies the chapter's smoke reductions (:data:`.designs.SMOKE`) when ``smoke = True``
  (``-p smoke True``) or the environment sets ``CONVNEXT_REPORT_SMOKE=1`` (nbval cannot inject
  parameters), except to the parameters the user passed (``-p epochs 2`` stays 2),
- times the chapter and describes where it runs (device, versions, git commit).

Runs come from the result store when it has them and are trained otherwise (:mod:`.runner`).
Its last cell calls :meth:`Chapter.finish`, which writes ``<records>/<chapter>.json``; the
status page and the results chapter are built from those records only (:mod:`.paths` says where).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import TrainConfig
from ..distributed import resolve_device
from ..environment import device_name, git_state, now_iso, package_versions
from ..runfolder import Run
from .banners import Banner, chapter_banner, settings_table
from .designs import SMOKE, run_config
from .keys import run_key
from .parameters import apply_smoke, parameters, passed_parameters
from .paths import runs_dir
from .records import complete_record, run_rows, write_record
from .results import glue_texts, headline, headline_texts, headlines
from .runner import DeadlineError, Obtained, Pending, prepare, train_missing
from .switches import smoke_from_env
from .tables import summary_line

__all__ = ["Chapter", "config_hash", "environment", "parameters", "start"]

def environment(device: str = "auto") -> dict[str, Any]:
    """Where a chapter runs: device, versions and git commit (from :mod:`convnext_report.environment`)."""
    dev = resolve_device(device)
    versions = package_versions()
    git = git_state()
    return {
        "device": device_name(dev),
        "device_type": dev.type,
        "python": versions["python"],
        "torch": versions.get("torch") or "not installed",
        "timm": versions.get("timm") or "not installed",
        "convnext_report": versions.get("convnext-report") or "not installed",
        "git_commit": (git["commit"] or "no commit yet")[:10],
        "git_dirty": bool(git["dirty"]),
    }


@dataclass
class Chapter:
    """A running chapter: its effective parameters, the smoke flag and the record in progress.

    Parameters read as attributes (``ch.epochs``). Use :meth:`config` to turn them into a
    :class:`~convnext_report.config.TrainConfig`, :meth:`train`/:meth:`sweep` to run, and
    :meth:`finish` at the end.
    """

    name: str
    title: str
    params: dict[str, Any]
    smoke: bool
    reductions: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    passed: set[str] = field(default_factory=set)
    record: dict[str, Any] = field(default_factory=dict)
    runs: list[Any] = field(default_factory=list)
    obtained: list[Obtained] = field(default_factory=list)
    _banner: Banner | None = field(default=None, repr=False)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def __getattr__(self, key: str) -> Any:
        params = self.__dict__.get("params", {})
        if key in params:
            return params[key]
        raise AttributeError(f"chapter {self.__dict__.get('name')!r} has no parameter {key!r}; "
                             f"parameters: {', '.join(sorted(params))}")

    def __repr__(self) -> str:  # stable: notebooks are compared by nbval
        return f"Chapter({self.name!r}, configuration={self.configuration!r})"

    @property
    def configuration(self) -> str:
        """``"smoke"`` when smoke reductions are in effect, else ``"full"``."""
        return "smoke" if self.smoke and self.reductions else "full"

    # ----------------------------------------------------------------- display

    def banner(self) -> Banner:
        """A MyST admonition saying where and in which configuration this page was executed.

        Displayed, it is updated by :meth:`finish` with where the chapter's runs were trained.
        """
        self._banner = Banner(chapter_banner(self.record, self.configuration, self.reductions),
                              display_id=f"banner-{self.name}")
        return self._banner

    def settings(self) -> pd.DataFrame:
        """The effective parameters as a table: the full default where smoke changed it, and who set each."""
        return settings_table(self.params, self.reductions, self.passed)

    # ----------------------------------------------------------------- runs

    def config(self, **changes: Any):
        """A :class:`TrainConfig` from the chapter parameters that are config fields, then ``changes``.

        Run folders go to ``<runs>/<chapter>[-smoke]/``; progress bars are off (notebook output).
        """
        seed = changes.pop("seed", self.params.get("seed", 0))
        return run_config(self.params, changes, seed=seed, out_dir=str(self.runs_dir),
                          extra={"chapter": self.name, "configuration": self.configuration})

    @property
    def runs_dir(self) -> Path:
        return runs_dir() / (self.name + ("-smoke" if self.configuration == "smoke" else ""))

    def _run_config(self, label: str, changes: Mapping[str, Any]) -> TrainConfig:
        changes = dict(changes)
        seed = changes.pop("seed", self.params.get("seed", 0))
        extra = {"label": label, **changes.pop("extra", {})}
        return self.config(**changes, seed=seed, extra=extra)

    def _keep(self, got: Obtained) -> Run:
        """Add a run to the chapter and print its one summary line (its log stays in the run folder)."""
        self.obtained.append(got)
        self.runs.append(got.run)
        print(summary_line(got.run, source=got.source))
        return got.run

    def train(self, label: str, *, weights: bool = False, **changes: Any) -> Run:
        """One run ``<label>-s<seed>-<key[:8]>``: from the result store, else trained and stored.

        ``weights=True``: the chapter needs the run's weights here (chapter 3), so a stored run is
        trained again when its checkpoint is not on this machine and training is allowed.
        """
        smoke = self.configuration == "smoke"
        got = prepare(self.name, label, self._run_config(label, changes), smoke=smoke, need_weights=weights)
        if isinstance(got, Pending):
            trained, skipped = train_missing(self.name, [got], smoke=smoke, workers=1)
            if skipped:
                raise DeadlineError(self.name, skipped)
            got = trained[0]
        return self._keep(got)

    def sweep(self, variants: Mapping[str, Mapping[str, Any]], *, seeds: Sequence[int] | None = None,
              workers: int | None = None, **common: Any) -> dict[str, list[Run]]:
        """Every variant (``label -> config changes``) for every seed; returns ``label -> runs``.

        Stored runs are loaded; the missing ones are trained together, several at once on a GPU
        (``workers``, default :func:`convnext_report.packing.choose_workers`). Runs that cannot finish
        before the deadline are skipped and the others still run; then :class:`.runner.DeadlineError`
        lists the skipped ones.
        """
        seeds = list(seeds if seeds is not None else self.params.get("seeds", [self.params.get("seed", 0)]))
        smoke = self.configuration == "smoke"
        planned = [(label, self._run_config(label, {**common, **changes, "seed": s}))
                   for label, changes in variants.items() for s in seeds]
        found = [prepare(self.name, label, config, smoke=smoke) for label, config in planned]
        trained, skipped = train_missing(self.name, [g for g in found if isinstance(g, Pending)], smoke=smoke,
                                         workers=workers)
        by_key = {got.key: got for got in trained}
        out: dict[str, list[Run]] = {}
        for (label, _), got in zip(planned, found):
            got = by_key.get(got.key) if isinstance(got, Pending) else got
            if got is not None:
                out.setdefault(label, []).append(self._keep(got))
        if skipped:
            raise DeadlineError(self.name, skipped)
        return out

    # ----------------------------------------------------------------- record

    def headline(self, key: str, runs: Sequence[Any], **kw: Any) -> dict[str, Any]:
        """:func:`results.headline` for this chapter, tagged with its configuration."""
        return {**headline(key, runs, chapter=self.name, **kw), "configuration": self.configuration}

    def headlines(self, prefix: str, runs: Mapping[str, Sequence[Any]], *, title: str | None = None,
                  source_key: Any = None, **kw: Any) -> list[dict[str, Any]]:
        """:func:`results.headlines` for this chapter: one row per label, key ``<prefix>_<label>``."""
        return [{**row, "configuration": self.configuration}
                for row in headlines(prefix, runs, chapter=self.name, title=title, source_key=source_key, **kw)]

    def glue(self, rows: Sequence[Mapping[str, Any]] = (), **texts: str) -> dict[str, str]:
        """Glue the headline ``rows`` (and ``texts``) for ``{glue:text}`key``` in this chapter's prose:
        every number the prose states comes from a cell that ran (smoke numbers read as not results)."""
        return glue_texts({**headline_texts(rows), **texts})

    def finish(self, results: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write ``<records>/<chapter>.json`` (environment, time, parameters, runs, where they were
        trained, headline results) and update the banner with where the runs were trained."""
        minutes = (time.perf_counter() - self._t0) / 60.0
        self.record = complete_record(self.record, minutes=minutes, runs=run_rows(self.obtained), results=results)
        path = write_record(self.name, self.record)
        if self._banner is not None:
            self._banner.update(chapter_banner(self.record, self.configuration, self.reductions,
                                               self.record["provenance"]))
        return path


def config_hash(config: Any) -> str:
    """Eight hex digits identifying what a config computes: the start of its store key (:func:`.keys.run_key`)."""
    return run_key(config)[:8]


def start(name: str, namespace: Mapping[str, Any], *, title: str,
          smoke: Mapping[str, Any] | None = None) -> Chapter:
    """Begin a chapter: read its parameters from ``namespace`` and apply ``smoke`` when asked.

    ``smoke`` (default :data:`.designs.SMOKE` of ``name``) maps parameter names to their smoke
    values; they replace the values of the parameters cell, except those passed with ``-p``, when
    the ``smoke`` parameter is true or ``$CONVNEXT_REPORT_SMOKE`` is set. Unknown names are an
    error (a typo would otherwise silently run the full size).
    """
    params = parameters(namespace)
    smoke = dict(SMOKE.get(name, {}) if smoke is None else smoke)
    unknown = sorted(set(smoke) - set(params))
    if unknown:
        raise ValueError(f"smoke settings {unknown} are not parameters of {name}; parameters: {sorted(params)}")
    passed = passed_parameters(namespace)
    use_smoke = bool(params.get("smoke", False)) or smoke_from_env()
    reductions = {}
    if use_smoke:
        reductions = apply_smoke(params, smoke, passed)
        params["smoke"] = True
    chapter = Chapter(name=name, title=title, params=params, smoke=use_smoke, reductions=reductions, passed=passed)
    chapter.record = {
        "chapter": name,
        "title": title,
        "configuration": chapter.configuration,
        "smoke_reductions": {k: {"full": f, "smoke": s} for k, (f, s) in reductions.items()},
        "passed_parameters": sorted(passed),
        "parameters": params,
        "started_at": now_iso(),
        "environment": environment(str(params.get("device", "auto"))),
    }
    return chapter
