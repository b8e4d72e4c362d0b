"""What every book chapter shares: parameters, the smoke switch, runs and the chapter record.

A chapter notebook has one ``parameters`` cell (papermill) holding the *full* configuration,
then calls :func:`start`, which

- collects those parameters from the notebook namespace,
- applies the chapter's smoke reductions when ``smoke = True`` (``-p smoke True``) or the
  environment sets ``CONVNEXT_REPORT_SMOKE=1`` (nbval cannot inject parameters),
- times the chapter and describes where it runs (device, versions, git commit).

Its last cell calls :meth:`Chapter.finish`, which writes ``<records>/<chapter>.json``; the
status page and the results chapter are built from those records only.

Folders (environment variables override them, so tests never write into the repository):

=====================  ==========================  ==================================
what                   variable                    default
=====================  ==========================  ==================================
chapter records        ``CONVNEXT_REPORT_RECORDS``  ``<repo>/book/records``
run folders, backbone  ``CONVNEXT_REPORT_RUNS``     ``<repo>/runs``
=====================  ==========================  ==================================
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convnext_report import records

# Chapters show no progress widgets; tqdm.auto's warning that ipywidgets is missing would only
# put an installation-dependent path into the notebooks' outputs.
warnings.filterwarnings("ignore", message="IProgress not found")

SMOKE_ENV = "CONVNEXT_REPORT_SMOKE"
RECORDS_ENV = "CONVNEXT_REPORT_RECORDS"
RUNS_ENV = "CONVNEXT_REPORT_RUNS"

#: types a parameters-cell value may have (everything else in the namespace is ignored)
_PARAM_TYPES = (bool, int, float, str, type(None), list, tuple, dict)
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


# --------------------------------------------------------------------------- folders


def repo_root() -> Path:
    """The book's root (the folder holding ``_toc.yml``): searched from the cwd, then from this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
                return folder
    raise FileNotFoundError(
        "cannot find the book root (a folder with _toc.yml and book/); run from the repository "
        f"or set {RECORDS_ENV} and {RUNS_ENV}"
    )


def _env_dir(variable: str, default: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else repo_root() / default


def records_dir() -> Path:
    """Where chapter records go: ``$CONVNEXT_REPORT_RECORDS`` or ``<repo>/book/records``."""
    return _env_dir(RECORDS_ENV, "book/records")


def runs_dir() -> Path:
    """Parent of all run folders: ``$CONVNEXT_REPORT_RUNS`` or ``<repo>/runs``."""
    return _env_dir(RUNS_ENV, "runs")


def backbones_dir() -> Path:
    """Where chapter 03 exports its pretrained backbones (``<runs>/backbones``)."""
    return runs_dir() / "backbones"


def smoke_from_env() -> bool:
    """True when ``CONVNEXT_REPORT_SMOKE`` is set to 1/true/yes/on."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters-cell values in a notebook namespace: public names bound to plain data."""
    return {
        k: v for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PARAM_TYPES)
    }


# --------------------------------------------------------------------------- environment


def environment(device: str = "auto") -> dict[str, Any]:
    """Where a chapter runs: device, versions and git commit (from :mod:`convnext_report.records`)."""
    from convnext_report.distributed import resolve_device

    dev = resolve_device(device)
    versions = records.package_versions()
    git = records.git_state()
    return {
        "device": records.device_name(dev),
        "device_type": dev.type,
        "python": versions["python"],
        "torch": versions.get("torch") or "not installed",
        "timm": versions.get("timm") or "not installed",
        "convnext_report": versions.get("convnext-report") or "not installed",
        "git_commit": (git["commit"] or "no commit yet")[:10],
        "git_dirty": bool(git["dirty"]),
    }


# --------------------------------------------------------------------------- the chapter


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

    def banner(self):
        """A MyST admonition saying where and in which configuration this page was executed.

        Shown at the top of every training chapter; on a full GPU execution it is a short note.
        """
        from IPython.display import Markdown

        env = self.record["environment"]
        date = self.record["started_at"][:10]
        if self.configuration == "smoke":
            changes = ", ".join(f"`{k}` {full!r} → {small!r}" for k, (full, small) in self.reductions.items())
            body = (
                f"This page was executed on **{env['device']}** on {date} in the **smoke configuration** "
                f"({changes}). It shows that every cell runs end to end; its numbers are tiny-budget "
                "checks and say nothing about the methods. The defaults in the parameters cell are the "
                "full configuration; see the [status page](status.ipynb) for where each chapter ran."
            )
            title = "CPU smoke configuration" if env["device_type"] == "cpu" else "Smoke configuration"
            return Markdown(f"```{{admonition}} {title} — not a result\n:class: warning\n\n{body}\n```")
        if env["device_type"] == "cpu":
            body = (f"This page was executed in the full configuration, but on **{env['device']}** on {date}; "
                    "timings are CPU timings.")
            return Markdown(f"```{{admonition}} Executed on CPU\n:class: note\n\n{body}\n```")
        body = f"Executed in the full configuration on **{env['device']}** on {date} (see the [status page](status.ipynb))."
        return Markdown(f"```{{note}}\n{body}\n```")

    def settings(self):
        """The effective parameters as a table, with the full default where smoke changed it."""
        import pandas as pd

        rows = [{"parameter": k, "value": repr(v),
                 "full configuration": repr(self.reductions[k][0]) if k in self.reductions else ""}
                for k, v in self.params.items()]
        return pd.DataFrame(rows).set_index("parameter")

    # ----------------------------------------------------------------- runs

    def config(self, **changes: Any):
        """A :class:`TrainConfig` from the chapter parameters that are config fields, then ``changes``.

        Run folders go to ``<runs>/<chapter>[-smoke]/``; progress bars are off (notebook output).
        """
        from convnext_report.config import field_names, from_dict

        values = {k: v for k, v in self.params.items() if k in set(field_names())}
        values.update(out_dir=str(self.runs_dir), progress=False)
        values.update(changes)
        values["extra"] = {"chapter": self.name, "configuration": self.configuration, **values.get("extra", {})}
        return from_dict(values)

    @property
    def runs_dir(self) -> Path:
        return runs_dir() / (self.name + ("-smoke" if self.configuration == "smoke" else ""))

    def train(self, label: str, *, on_epoch_end: Any = None, **changes: Any):
        """Train (or reload) one run ``<label>-s<seed>-<config hash>`` with :func:`runner.train`.

        The folder name hashes the configuration, so re-executing a chapter reloads finished
        runs and a changed parameter trains a new one.
        """
        from convnext_report import runner

        seed = changes.pop("seed", self.params.get("seed", 0))
        extra = {"label": label, **changes.pop("extra", {})}
        config = self.config(**changes, seed=seed, extra=extra)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "run"
        config = config.replace(run_name=f"{safe}-s{seed}-{config_hash(config)}", resume=True)
        if on_epoch_end == "dyt_alpha":  # log DyT alphas per epoch (nothing to log with LayerNorm)
            on_epoch_end = AlphaLog(Path(config.out_dir) / config.run_name, config.dyt_alpha_init) \
                if config.norm == "dyt" else None
        from convnext_report.engine import NonFiniteLossError

        try:
            run = runner.train(config, on_epoch_end=on_epoch_end)
        except NonFiniteLossError as err:  # diverged: keep the epochs before it, say so, go on
            print(f"{label} (seed {seed}) diverged and is reported up to its last finite epoch: {err}")
            run = runner.load_run(Path(config.out_dir) / config.run_name)
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
        """:func:`reporting.headline` for this chapter, tagged with its configuration."""
        from convnext_report import reporting

        return {**reporting.headline(key, runs, chapter=self.name, **kw), "configuration": self.configuration}

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
        from convnext_report import reporting

        minutes = (time.perf_counter() - self._t0) / 60.0
        on_gpu = self.record["environment"]["device_type"] == "cuda"
        run_rows = []
        for run in self.runs:
            try:
                run_rows.append(reporting.run_summary(run))
            except (ValueError, KeyError):  # a run without history (e.g. interrupted)
                continue
        record = {
            **self.record,
            "finished_at": records.now_iso(),
            "minutes": round(minutes, 3),
            "gpu_minutes": round(minutes if on_gpu else 0.0, 3),
            "runs": run_rows,
            "results": [dict(r) for r in results],
        }
        folder = records_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        records.write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")
        self.record = record
        return path


#: config keys that do not change what a run computes (left out of the run-folder hash)
_UNHASHED = {"run_name", "resume", "progress", "device", "compile", "data_dir", "out_dir", "extra"}


def config_hash(config: Any) -> str:
    """Eight hex digits identifying what a config computes (runtime keys excluded)."""
    import hashlib

    values = {k: v for k, v in config.to_dict().items() if k not in _UNHASHED}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


class AlphaLog:
    """``on_epoch_end`` hook: record every DyT alpha after each epoch in ``<run>/dyt_alpha.csv``.

    It reads the ``checkpoint_last.pt`` the runner wrote just before calling it (columns
    ``epoch`` (1-based; 0 is the initial value), ``layer``, ``alpha``).
    """

    FILE = "dyt_alpha.csv"

    def __init__(self, folder: Path, alpha_init: float) -> None:
        self.folder, self.alpha_init = Path(folder), float(alpha_init)

    def __call__(self, row: Mapping[str, Any]) -> None:
        import pandas as pd
        import torch

        state = torch.load(self.folder / "checkpoint_last.pt", map_location="cpu", weights_only=True)["model"]
        alphas = {k[: -len(".alpha")]: float(v.reshape(-1)[0]) for k, v in state.items() if k.endswith(".alpha")}
        file = self.folder / self.FILE
        old = pd.read_csv(file) if file.is_file() else pd.DataFrame(
            {"epoch": 0, "layer": list(alphas), "alpha": self.alpha_init})
        new = pd.DataFrame({"epoch": int(row["epoch"]) + 1, "layer": list(alphas), "alpha": list(alphas.values())})
        pd.concat([old[old["epoch"] != int(row["epoch"]) + 1], new]).to_csv(file, index=False)


def records_banner(records: Sequence[Mapping[str, Any]]):
    """A MyST admonition for pages built from records: which chapters are smoke-only or missing."""
    from IPython.display import Markdown

    smoke = [r.get("title") or r["chapter"] for r in records if r.get("configuration") == "smoke"]
    if not records:
        body = "No chapter has written a record yet: execute the chapters first (see the introduction)."
    elif smoke:
        body = (f"{len(smoke)} of the {len(records)} executed chapters ran in the **CPU smoke configuration** "
                f"({', '.join(smoke)}). Their numbers appear below only as \"CPU smoke configuration — not a "
                "result\"; they will be replaced when those chapters are executed in the full configuration.")
    else:
        return Markdown("All chapters behind this page ran in the full configuration (see the [status page](status.ipynb)).")
    return Markdown(f"```{{admonition}} Not yet results\n:class: warning\n\n{body}\n```")


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
        "started_at": records.now_iso(),
        "environment": environment(str(params.get("device", "auto"))),
    }
    return chapter


# --------------------------------------------------------------------------- backbones


def backbone_path(name: str, *, smoke: bool = False) -> Path:
    """``<runs>/backbones/<name>[-smoke].pt``."""
    return backbones_dir() / f"{name}{'-smoke' if smoke else ''}.pt"


def export_backbone(run: Any, name: str, *, smoke: bool = False, checkpoint: str = "checkpoint_best.pt") -> Path:
    """Save a run's best weights as a backbone for the transfer chapters, with what built it.

    The file is a checkpoint dict ``{"model": state_dict, "meta": {...}}`` that
    :func:`convnext_report.models.load_pretrained` accepts.
    """
    import torch

    from convnext_report import reporting

    source = Path(run.path) / checkpoint
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; did the run finish an epoch?")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    cfg = run.config
    summary = reporting.run_summary(run)
    meta = {
        "name": name,
        "model": cfg.model,
        "stem_stride": cfg.stem_stride,
        "image_size": cfg.image_size,
        "norm": cfg.norm,
        "dataset": cfg.dataset,
        "epochs_run": summary["epochs_run"],
        "val_top1": summary["best_val_acc"],
        "configuration": "smoke" if smoke else "full",
        "run": str(run.path),
        "created_at": records.now_iso(),
    }
    path = backbone_path(name, smoke=smoke)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.torch_save_atomic({"model": state, "meta": meta}, path)
    records.write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return path


def find_backbone(name: str, *, smoke: bool = False) -> tuple[Path, dict[str, Any]]:
    """The backbone chapter 03 exported (path and its metadata), or a clear error saying what to do."""
    path = backbone_path(name, smoke=smoke)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(
            f"no pretrained backbone at {path}. Run chapter 03 first in the same configuration "
            f"({'smoke' if smoke else 'full'}), e.g. `papermill book/03_source_backbone.ipynb out.ipynb"
            f"{' -p smoke True' if smoke else ''}`, or pass `-p pretrained <checkpoint file or timm id>`."
        )
    return path, json.loads(meta_path.read_text())


#: what the source used: timm id -> (model, stem stride, image size) for the transfer chapters
TIMM_TRANSFER_SOURCES = {"convnext_tiny.fb_in1k": ("convnext_tiny", 4, 224)}


def transfer_source(pretrained: str | None, backbone: str, *, smoke: bool = False) -> dict[str, Any]:
    """TrainConfig fields for the transfer chapters' backbone.

    ``pretrained=None``: the backbone chapter 03 exported under ``backbone``. A timm id from
    :data:`TIMM_TRANSFER_SOURCES` (needs network): the source's ImageNet weights at its resolution.
    A file: used as is, with the model and stem read from its ``meta`` when present.
    """
    if pretrained is None:
        path, meta = find_backbone(backbone, smoke=smoke)
        return dict(model=meta["model"], stem_stride=meta["stem_stride"], image_size=meta["image_size"],
                    norm=meta.get("norm", "layernorm"), pretrained=str(path))
    if pretrained in TIMM_TRANSFER_SOURCES:
        model, stride, size = TIMM_TRANSFER_SOURCES[pretrained]
        return dict(model=model, stem_stride=stride, image_size=size, pretrained=pretrained)
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained={pretrained!r} is neither a file nor a known timm id "
                                f"({', '.join(TIMM_TRANSFER_SOURCES)})")
    meta = path.with_suffix(".json")
    info = json.loads(meta.read_text()) if meta.is_file() else {}
    out = dict(pretrained=str(path))
    out.update({k: info[k] for k in ("model", "stem_stride", "image_size", "norm") if k in info})
    return out


# --------------------------------------------------------------------------- recipes

#: Training recipes shared by chapters 6 and 7 (TrainConfig fields).
RECIPES: dict[str, dict[str, Any]] = {
    # source 001 as written: ImageNet stem, lr 1e-3 held constant, no augmentation, no regularisation
    "source": dict(stem_stride=4, lr=1e-3, schedule="constant", warmup_epochs=0.0, weight_decay=0.0,
                   crop_padding=0, hflip=False, randaugment=None, label_smoothing=0.0, drop_path_rate=0.0,
                   batch_size=64),
    # a recipe made for 32-pixel images: stride-2 stem, AdamW, warmup + cosine, augmentation, regularisation
    "small-image": dict(stem_stride=2, optimizer="adamw", lr=2e-3, schedule="cosine", warmup_epochs=5.0,
                        weight_decay=0.05, crop_padding=4, hflip=True, randaugment="n2m9", label_smoothing=0.1,
                        drop_path_rate=0.1, batch_size=128),
}


def recipe(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of ``RECIPES[name]`` with ``changes``, tagged ``extra={"recipe": name}``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return {**RECIPES[name], **changes, "extra": {"recipe": name}}


def grid(base: Mapping[str, Any], **axes: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Every combination of ``axes`` on top of ``base``: ``"a / b" -> {**base, axis: value, ...}``.

    >>> list(grid({}, model=["atto", "nano"], optimizer=["sgd"]))
    ['atto / sgd', 'nano / sgd']
    """
    import itertools

    names = list(axes)
    out = {}
    for values in itertools.product(*(axes[n] for n in names)):
        out[" / ".join(str(v) for v in values)] = {**base, **dict(zip(names, values))}
    return out
