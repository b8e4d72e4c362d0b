"""What every book chapter shares: parameters, the smoke switch, runs and the chapter record.

A chapter notebook has one ``parameters`` cell (papermill) holding the *full* configuration,
then calls :func:`start`, which

- collects those parameters from the notebook namespace,
- applies the chapter's smoke reductions when ``smoke = True`` (``-p smoke True``) or the
  environment sets ``CONVNEXT_REPORT_SMOKE=1`` (nbval cannot inject parameters),
- times the chapter and describes where it runs (device, versions, git commit).

Its last cell calls :meth:`Chapter.finish`, which writes ``<records>/<chapter>.json``; the
status page and the results chapter are built from those records only (:mod:`.paths` says where).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_text_atomic
from ..config import field_names, from_dict
from ..distributed import resolve_device
from ..engine import NonFiniteLossError
from ..environment import device_name, git_state, now_iso, package_versions
from ..runfolder import load_run
from ..training import train
from .alpha_log import AlphaLog
from .banners import chapter_banner
from .paths import records_dir, runs_dir, smoke_from_env
from .results import headline
from .tables import run_summary

__all__ = ["Chapter", "config_hash", "environment", "parameters", "start"]

# Chapters show no progress widgets; tqdm.auto's warning that ipywidgets is missing would only
# put an installation-dependent path into the notebooks' outputs.
warnings.filterwarnings("ignore", message="IProgress not found")

#: types a parameters-cell value may have (everything else in the namespace is ignored)
_PARAM_TYPES = (bool, int, float, str, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters-cell values in a notebook namespace: public names bound to plain data."""
    return {
        k: v for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PARAM_TYPES)
    }


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
    record: dict[str, Any] = field(default_factory=dict)
    runs: list[Any] = field(default_factory=list)
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

    def banner(self) -> Any:
        """A MyST admonition saying where and in which configuration this page was executed."""
        return chapter_banner(self.record, self.configuration, self.reductions)

    def settings(self):
        """The effective parameters as a table, with the full default where smoke changed it."""
        rows = [{"parameter": k, "value": repr(v),
                 "full configuration": repr(self.reductions[k][0]) if k in self.reductions else ""}
                for k, v in self.params.items()]
        return pd.DataFrame(rows).set_index("parameter")

    # ----------------------------------------------------------------- runs

    def config(self, **changes: Any):
        """A :class:`TrainConfig` from the chapter parameters that are config fields, then ``changes``.

        Run folders go to ``<runs>/<chapter>[-smoke]/``; progress bars are off (notebook output).
        """
        values = {k: v for k, v in self.params.items() if k in set(field_names())}
        values.update(out_dir=str(self.runs_dir), progress=False)
        values.update(changes)
        values["extra"] = {"chapter": self.name, "configuration": self.configuration, **values.get("extra", {})}
        return from_dict(values)

    @property
    def runs_dir(self) -> Path:
        return runs_dir() / (self.name + ("-smoke" if self.configuration == "smoke" else ""))

    def train(self, label: str, *, on_epoch_end: Any = None, **changes: Any):
        """Train (or reload) one run ``<label>-s<seed>-<config hash>`` with :func:`convnext_report.training.train`.

        The folder name hashes the configuration, so re-executing a chapter reloads finished
        runs and a changed parameter trains a new one.
        """
        seed = changes.pop("seed", self.params.get("seed", 0))
        extra = {"label": label, **changes.pop("extra", {})}
        config = self.config(**changes, seed=seed, extra=extra)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"
        config = config.replace(run_name=f"{safe}-s{seed}-{config_hash(config)}", resume=True)
        if on_epoch_end == "dyt_alpha":  # log DyT alphas per epoch (nothing to log with LayerNorm)
            on_epoch_end = AlphaLog(Path(config.out_dir) / config.run_name, config.dyt_alpha_init) \
                if config.norm == "dyt" else None
        try:
            run = train(config, on_epoch_end=on_epoch_end)
        except NonFiniteLossError as err:  # diverged: keep the epochs before it, say so, go on
            print(f"{label} (seed {seed}) diverged and is reported up to its last finite epoch: {err}")
            run = load_run(Path(config.out_dir) / config.run_name)
        self.runs.append(run)
        return run

    def sweep(self, variants: Mapping[str, Mapping[str, Any]], *, seeds: Sequence[int] | None = None,
              **common: Any) -> dict[str, list[Any]]:
        """Train every variant (``label -> config changes``) for every seed; returns ``label -> runs``."""
        seeds = list(seeds if seeds is not None else self.params.get("seeds", [self.params.get("seed", 0)]))
        return {label: [self.train(label, **{**common, **changes, "seed": s}) for s in seeds]
                for label, changes in variants.items()}

    # ----------------------------------------------------------------- record

    def headline(self, key: str, runs: Sequence[Any], **kw: Any) -> dict[str, Any]:
        """:func:`results.headline` for this chapter, tagged with its configuration."""
        return {**headline(key, runs, chapter=self.name, **kw), "configuration": self.configuration}

    def headlines(self, prefix: str, runs: Mapping[str, Sequence[Any]], *, title: str | None = None,
                  source_key: Any = None, **kw: Any) -> list[dict[str, Any]]:
        """One headline per label: key ``<prefix>_<label>`` (lower case, ``_`` for other characters).

        ``source_key``: a function of a run's config returning the source claim it answers, or None.
        """
        rows = []
        for label, group in runs.items():
            if not group:
                continue
            key = f"{prefix}_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
            claim = source_key(group[0].config) if callable(source_key) else source_key
            rows.append(self.headline(key, group, experiment=f"{title or prefix}: {label}",
                                      source_key=claim, **kw))
        return rows

    def finish(self, results: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write ``<records>/<chapter>.json`` (environment, time, parameters, runs, headline results)."""
        minutes = (time.perf_counter() - self._t0) / 60.0
        on_gpu = self.record["environment"]["device_type"] == "cuda"
        run_rows = []
        for run in self.runs:
            try:
                run_rows.append(run_summary(run))
            except (ValueError, KeyError):  # a run without history (e.g. interrupted)
                continue
        record = {
            **self.record,
            "finished_at": now_iso(),
            "minutes": round(minutes, 3),
            "gpu_minutes": round(minutes if on_gpu else 0.0, 3),
            "runs": run_rows,
            "results": [dict(r) for r in results],
        }
        folder = records_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")
        self.record = record
        return path


#: config keys that do not change what a run computes (left out of the run-folder hash)
_UNHASHED = {"run_name", "resume", "progress", "device", "compile", "data_dir", "out_dir", "extra"}


def config_hash(config: Any) -> str:
    """Eight hex digits identifying what a config computes (runtime keys excluded)."""
    values = {k: v for k, v in config.to_dict().items() if k not in _UNHASHED}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def start(name: str, namespace: Mapping[str, Any], *, title: str,
          smoke: Mapping[str, Any] | None = None) -> Chapter:
    """Begin a chapter: read its parameters from ``namespace`` and apply ``smoke`` when asked.

    ``smoke`` maps parameter names to their smoke-configuration values; they replace the
    values of the parameters cell when the ``smoke`` parameter is true or ``$CONVNEXT_REPORT_SMOKE``
    is set. Unknown names are an error (a typo would otherwise silently run the full size).
    """
    params = parameters(namespace)
    smoke = dict(smoke or {})
    unknown = sorted(set(smoke) - set(params))
    if unknown:
        raise ValueError(f"smoke settings {unknown} are not parameters of {name}; parameters: {sorted(params)}")
    use_smoke = bool(params.get("smoke", False)) or smoke_from_env()
    reductions = {}
    if use_smoke:
        reductions = {k: (params[k], v) for k, v in smoke.items() if params[k] != v}
        params.update(smoke)
        params["smoke"] = True
    chapter = Chapter(name=name, title=title, params=params, smoke=use_smoke, reductions=reductions)
    chapter.record = {
        "chapter": name,
        "title": title,
        "configuration": chapter.configuration,
        "smoke_reductions": {k: {"full": f, "smoke": s} for k, (f, s) in reductions.items()},
        "parameters": params,
        "started_at": now_iso(),
        "environment": environment(str(params.get("device", "auto"))),
    }
    return chapter
