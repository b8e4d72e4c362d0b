"""What every book chapter shares: its parameters, runs, banner, the paragraphs that report its numbers, its record."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..config import TrainConfig
from ..distributed import resolve_device
from ..environment import device_name, git_state, now_iso, package_versions
from ..runfolder import Run
from ..summary import run_summary
from . import store
from .experiments import defaults as notebook_defaults, read_files, run_config, seeds_of, smoke_file
from .glue import glue
from .results import paragraph, provenance_text, texts
from .runner import Obtained, Pending, prepare, runs_folder, train_missing

__all__ = ["NO_RESULTS", "Chapter", "admonition", "chapter_banner", "environment", "markdown", "parameters", "start"]

_SMOKE_FILE, _PASSED = "smoke file", "passed (-p/-y)"  # who set a value that differs from the cell's default
_PARAM_TYPES = (bool, int, float, str, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}
#: what a smoke page says, once, where its paragraphs about results would be
NO_RESULTS = ("*No results yet: in the smoke configuration this page only shows that its code runs. The sentences "
              "that report its numbers appear here when it runs in the full configuration.*")


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values of a notebook namespace: public names bound to plain data."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PARAM_TYPES)}


def environment(device: str = "auto") -> dict[str, Any]:
    """Where a chapter runs: device, versions and git commit (from :mod:`convnext_report.environment`)."""
    dev, versions, git = resolve_device(device), package_versions(), git_state()
    return {"device": device_name(dev), "device_type": dev.type, "python": versions["python"],
            **{k: versions.get(k.replace("_", "-")) or "not installed" for k in ("torch", "timm", "convnext_report")},
            "git_commit": (git["commit"] or "no commit yet")[:10], "git_dirty": bool(git["dirty"])}


def admonition(title: str, body: str, kind: str = "warning") -> str:
    """A MyST admonition (``nb_render_markdown_format: myst`` renders it)."""
    return f"```{{admonition}} {title}\n:class: {kind}\n\n{body}\n```"


def markdown(text: str) -> Any:
    """IPython's Markdown display object; None (a cell shows nothing) for no text."""
    from IPython.display import Markdown

    return Markdown(text) if text else None


def chapter_banner(record: Mapping[str, Any]) -> str:
    """The box atop a chapter: configuration, device, date, what smoke file and ``-p``/``-y`` changed, its runs."""
    def changes(by: str) -> str:
        return ", ".join(f"`{k}` {c['full']!r} → {c['value']!r}" for k, c in record["changed"].items()
                         if c["by"] == by and k != "smoke")

    env, date = record["environment"], record["started_at"][:10]
    listed = [f"- {what}: {changes(by)}" for what, by in (("set by the smoke file", _SMOKE_FILE),
                                                          ("passed with `-p`/`-y`", _PASSED)) if changes(by)]
    where = f"on **{env['device']}** on {date} ([status of every chapter](status.ipynb))"
    if record["configuration"] == "smoke":
        body = (f"Executed {where} in the **smoke configuration**: every cell runs, on tiny subsets and a few short "
                "epochs, so its numbers say nothing about the methods. It differs from the full configuration (the "
                "parameters cell's defaults) in:")
        title, kind = "Smoke configuration — not a result", "warning"
    else:
        body, title, kind = f"Executed in the full configuration {where}." + (
            " It differs from the parameters cell's defaults in:" if listed else ""), "Full configuration", "note"
    runs = f"Its runs: {provenance_text(record['runs'])}." if record.get("runs") else ""
    return admonition(title, "\n\n".join([body, "\n".join(listed), runs]), kind)


@dataclass
class Chapter:
    """A running chapter: its parameters (``ch.epochs``), what differs from the full configuration, its record."""

    name: str
    title: str
    params: dict[str, Any]
    changed: dict[str, tuple[Any, str]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    obtained: list[Obtained] = field(default_factory=list)
    _banner: Any = field(default=None, repr=False)
    _said_no_results: bool = field(default=False, repr=False)
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

    def banner(self) -> None:
        """Show the page's banner (:meth:`finish` adds its runs); glue every parameter for the prose."""
        from IPython.display import display

        for key, value in self.params.items():
            glue(key, value)
        self._banner = display(markdown(chapter_banner(self.record)), display_id=f"banner-{self.name}")

    def config(self, **changes: Any) -> TrainConfig:
        """A :class:`TrainConfig` from the parameters that are config fields, then ``changes``."""
        seed = changes.pop("seed", self.params.get("seed", 0))
        extra = {"chapter": self.name, "configuration": self.configuration, **changes.pop("extra", {})}
        return run_config(self.params, changes, seed=seed, out_dir=str(runs_folder(self.name, self.smoke)),
                          extra=extra)

    def sweep(self, variants: Mapping[str, Mapping[str, Any]], *, seeds: Sequence[int] | None = None,
              weights: bool = False) -> dict[str, list[Run]]:
        """Every variant (``label -> config changes``) for every seed: ``label -> runs``, from the store or trained;
        ``weights``: a stored run without its weights is trained again."""
        planned = [(label, self.config(**{**changes, "seed": s, "extra": {"label": label, **changes.get("extra", {})}}))
                   for label, changes in variants.items() for s in (seeds or seeds_of(self.params))]
        found = [prepare(self.name, label, config, smoke=self.smoke, need_weights=weights) for label, config in planned]
        trained = iter(train_missing([g for g in found if isinstance(g, Pending)])[0])
        out: dict[str, list[Run]] = {}
        for (label, _), got in zip(planned, found):
            self.obtained.append(next(trained) if isinstance(got, Pending) else got)
            out.setdefault(label, []).append(self.obtained[-1].run)
        return out

    def findings(self, rows: Sequence[Mapping[str, Any]], template: str, **values: Any) -> Any:
        """``template`` with the rows' texts, parameters and ``values``; smoke: :data:`NO_RESULTS` once a page."""
        if self.smoke:
            said, self._said_no_results = self._said_no_results, True
            return None if said else markdown(NO_RESULTS)
        return markdown(paragraph(template, {**self.params, **texts(rows), **values}))

    def finish(self, results: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write ``<runs>/records/<chapter>.json`` (environment, time, parameters, runs, headline rows)."""
        minutes = (time.perf_counter() - self._t0) / 60.0
        runs = [{**run_summary(g.run), "key": g.key, "from": g.source,
                 "trained_at": (g.run.record.get("end_time") or "")[:19],
                 "store_entry": f"{g.entry.path.parent.name}/{g.entry.path.name}" if g.entry is not None else None}
                for g in self.obtained]
        on_gpu = self.record["environment"]["device_type"] == "cuda"
        self.record.update(finished_at=now_iso(), minutes=round(minutes, 3),
                           gpu_minutes=round(minutes if on_gpu else 0.0, 3), runs=runs, results=[dict(r) for r in results])
        path = write_text_atomic(store.local_dir("records") / f"{self.name}.json",
                                 json.dumps(self.record, indent=1, default=str) + "\n")
        if self._banner is not None:
            self._banner.update(markdown(chapter_banner(self.record)))
        return path


def start(name: str, namespace: Mapping[str, Any], *, title: str, defaults: Mapping[str, Any] | None = None) -> Chapter:
    """Begin chapter ``name`` with the notebook's globals; a name its parameters cell (``defaults``) does not declare
    (``-p lrr 0.1``: papermill only warns) and an empty ``seeds`` are refused."""
    declared = dict(notebook_defaults(name) if defaults is None else defaults)
    values = parameters(namespace)
    if unknown := sorted(set(values) - set(declared)):
        raise ValueError(f"{name}: {unknown} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} "
                         f"of this chapter (a typo?); its parameters: {', '.join(sorted(declared))} (in an "
                         "interactive session, the values later cells set count too: restart the kernel)")
    params = {k: values.get(k, v) for k, v in declared.items()}
    if "seeds" in params and not list(params["seeds"]):
        raise ValueError(f"{name}: seeds is empty: at least one seed is needed (e.g. -y \"seeds: [0]\")")
    smoke = read_files([smoke_file(name)]) if params.get("smoke") and smoke_file(name).is_file() else {}
    changed = {k: (declared[k], _SMOKE_FILE if k in smoke and smoke[k] == v else _PASSED)
               for k, v in params.items() if v != declared[k]}
    chapter = Chapter(name=name, title=title, params=params, changed=changed)
    chapter.record = {"chapter": name, "title": title, "configuration": chapter.configuration,
                      "changed": {k: {"full": full, "value": params[k], "by": by} for k, (full, by) in changed.items()},
                      "parameters": params, "started_at": now_iso(),
                      "environment": environment(str(params.get("device", "auto")))}
    return chapter
