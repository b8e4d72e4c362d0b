"""What every book chapter shares: its parameters, its runs and its record.

A chapter's ``parameters`` cell holds the *full* configuration; papermill sets other values after it
(``-p``, ``-y``, ``-f book/params/<chapter>.smoke.yaml``). :func:`start` takes the values from the
notebook's namespace, refuses names the cell does not declare, and notes each value that differs from
the cell's (set by the smoke file, or passed). :meth:`Chapter.finish` writes the chapter's record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import TrainConfig
from ..distributed import resolve_device
from ..environment import device_name, git_state, now_iso, package_versions
from ..atomic import write_text_atomic
from ..runfolder import Run
from . import store
from .banners import Banner, chapter_banner, provenance, settings_table
from .experiments import defaults as notebook_defaults, read_files, run_config, seeds_of, smoke_file
from .results import glue_texts, headline, headline_texts, headlines
from .runner import Obtained, Pending, prepare, runs_folder, train_missing
from .tables import run_summary, summary_line

__all__ = ["PASSED", "SMOKE_FILE", "Chapter", "environment", "parameters", "start"]

SMOKE_FILE, PASSED = "smoke file", "passed (-p/-y)"  #: who set a value that differs from the cell's default
_PARAM_TYPES = (bool, int, float, str, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values of a notebook namespace: public names bound to plain data."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PARAM_TYPES)}


def environment(device: str = "auto") -> dict[str, Any]:
    """Where a chapter runs: device, versions and git commit (from :mod:`convnext_report.environment`)."""
    dev = resolve_device(device)
    versions, git = package_versions(), git_state()
    return {"device": device_name(dev), "device_type": dev.type, "python": versions["python"],
            "torch": versions.get("torch") or "not installed", "timm": versions.get("timm") or "not installed",
            "convnext_report": versions.get("convnext-report") or "not installed",
            "git_commit": (git["commit"] or "no commit yet")[:10], "git_dirty": bool(git["dirty"])}


@dataclass
class Chapter:
    """A running chapter: its parameters (read as attributes, ``ch.epochs``), what differs from the
    full configuration (``changed``: name -> (full value, who set it)) and the record in progress."""

    name: str
    title: str
    params: dict[str, Any]
    changed: dict[str, tuple[Any, str]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
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
    def smoke(self) -> bool:
        return bool(self.params.get("smoke", False))

    @property
    def configuration(self) -> str:
        return "smoke" if self.smoke else "full"

    def banner(self) -> Banner:
        """The box saying where and in which configuration this page ran (:meth:`finish` adds its runs)."""
        self._banner = Banner(chapter_banner(self.record, self.changed), display_id=f"banner-{self.name}")
        return self._banner

    def settings(self) -> pd.DataFrame:
        """The parameters as a table: value, the full configuration's where it differs, who set it."""
        return settings_table(self.params, self.changed)

    def config(self, **changes: Any) -> TrainConfig:
        """A :class:`TrainConfig` from the parameters that are config fields, then ``changes``."""
        seed = changes.pop("seed", self.params.get("seed", 0))
        extra = {"chapter": self.name, "configuration": self.configuration, **changes.pop("extra", {})}
        return run_config(self.params, changes, seed=seed, out_dir=str(runs_folder(self.name, self.smoke)),
                          extra=extra)

    def _run_config(self, label: str, changes: Mapping[str, Any]) -> TrainConfig:
        changes = dict(changes)
        extra = {"label": label, **changes.pop("extra", {})}
        return self.config(**changes, extra=extra)

    def _keep(self, got: Obtained) -> Run:
        self.obtained.append(got)
        print(summary_line(got.run, source=got.source))
        return got.run

    def train(self, label: str, *, weights: bool = False, **changes: Any) -> Run:
        """One run: from the result store, else trained and stored. ``weights``: its weights must be here
        (chapter 3), so a stored run without them is trained again."""
        got = prepare(self.name, label, self._run_config(label, changes), smoke=self.smoke, need_weights=weights)
        return self._keep(train_missing([got], workers=1)[0][0] if isinstance(got, Pending) else got)

    def sweep(self, variants: Mapping[str, Mapping[str, Any]], *, seeds: Sequence[int] | None = None,
              **common: Any) -> dict[str, list[Run]]:
        """Every variant (``label -> config changes``) for every seed: ``label -> runs``, from the store or
        trained (several at once on a GPU)."""
        seeds = list(seeds if seeds is not None else seeds_of(self.params))
        planned = [(label, self._run_config(label, {**common, **changes, "seed": s}))
                   for label, changes in variants.items() for s in seeds]
        found = [prepare(self.name, label, config, smoke=self.smoke) for label, config in planned]
        trained = iter(train_missing([g for g in found if isinstance(g, Pending)])[0])
        out: dict[str, list[Run]] = {}
        for (label, _), got in zip(planned, found):
            out.setdefault(label, []).append(self._keep(next(trained) if isinstance(got, Pending) else got))
        return out

    def headline(self, key: str, runs: Sequence[Any], **kw: Any) -> dict[str, Any]:
        """:func:`.results.headline` of this chapter."""
        return {**headline(key, runs, chapter=self.name, **kw), "configuration": self.configuration}

    def headlines(self, prefix: str, runs: Mapping[str, Sequence[Any]], **kw: Any) -> list[dict[str, Any]]:
        """:func:`.results.headlines` of this chapter: one row per label, key ``<prefix>_<label>``."""
        rows = headlines(prefix, runs, chapter=self.name, **kw)
        return [{**row, "configuration": self.configuration} for row in rows]

    def glue(self, rows: Sequence[Mapping[str, Any]] = (), **texts: str) -> dict[str, str]:
        """Glue the headline ``rows`` (and ``texts``) for ``{glue:text}`key``` in this chapter's prose."""
        return glue_texts({**headline_texts(rows), **texts})

    def finish(self, results: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write ``<runs>/records/<chapter>.json``: environment, time, parameters and what differs, each run
        (summary, key, entry, where and when trained), headline rows; the banner then shows the runs."""
        minutes = (time.perf_counter() - self._t0) / 60.0
        runs = [{**run_summary(g.run), "key": g.key, "from": g.source,
                 "trained_at": (g.run.record.get("end_time") or "")[:19],
                 "store_entry": g.entry.path.name if g.entry is not None else None} for g in self.obtained]
        on_gpu = self.record["environment"]["device_type"] == "cuda"
        self.record.update(finished_at=now_iso(), minutes=round(minutes, 3),
                           gpu_minutes=round(minutes if on_gpu else 0.0, 3), runs=runs, provenance=provenance(runs),
                           results=[dict(r) for r in results])
        path = write_text_atomic(store.local_dir("records") / f"{self.name}.json",
                                 json.dumps(self.record, indent=1, default=str) + "\n")
        if self._banner is not None:
            self._banner.update(chapter_banner(self.record, self.changed, self.record["provenance"]))
        return path


def start(name: str, namespace: Mapping[str, Any], *, title: str, defaults: Mapping[str, Any] | None = None) -> Chapter:
    """Begin chapter ``name`` with the values of ``namespace`` (the notebook's globals); ``defaults``: its
    cell's (default: ``papermill.inspect_notebook``). A name the cell does not declare (``-p lrr 0.1``:
    papermill only warns) and an empty ``seeds`` are refused."""
    declared = dict(notebook_defaults(name) if defaults is None else defaults)
    values = parameters(namespace)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"{name}: {unknown} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} "
                         f"of this chapter (a typo?); its parameters: {', '.join(sorted(declared))} (in an "
                         "interactive session, the values later cells set count too: restart the kernel)")
    params = {k: values.get(k, v) for k, v in declared.items()}
    if "seeds" in params and not list(params["seeds"]):
        raise ValueError(f"{name}: seeds is empty: at least one seed is needed (e.g. -y \"seeds: [0]\")")
    smoke = read_files([smoke_file(name)]) if params.get("smoke") and smoke_file(name).is_file() else {}
    changed = {k: (declared[k], SMOKE_FILE if k in smoke and smoke[k] == v else PASSED)
               for k, v in params.items() if v != declared[k]}
    chapter = Chapter(name=name, title=title, params=params, changed=changed)
    chapter.record = {"chapter": name, "title": title, "configuration": chapter.configuration,
                      "changed": {k: {"full": full, "value": params[k], "by": by} for k, (full, by) in changed.items()},
                      "parameters": params, "started_at": now_iso(),
                      "environment": environment(str(params.get("device", "auto")))}
    return chapter
