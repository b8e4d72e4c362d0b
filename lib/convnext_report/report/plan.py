"""The book's GPU budget: every run of every chapter's parameters cell, its images and estimated seconds.

``python -m convnext_report plan`` reads the defaults of each notebook's parameters cell (the full
configuration; ``--smoke`` applies :data:`.designs.SMOKE`) without a kernel, builds the runs of
:mod:`.designs` exactly as the chapters do, and estimates them with :mod:`.estimate`. A run two
chapters share (same key) is counted once, in the first; runs already in the result store are
counted too (the budget is the book's), and the ``to train`` column says what is left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from . import store
from .designs import SMOKE, TRANSFER_CHAIN, chapter_groups, run_config, seeds_of
from .estimate import COMPILE_WARMUP_S, GPU, NOTEBOOK_OVERHEAD_S, assumptions, compile_shape, load_benchmarks, run_cost
from .keys import run_key
from .parameters import notebook_defaults
from .paths import repo_root

__all__ = ["CHAIN_LIMIT_S", "CHAPTER_LIMIT_S", "TOTAL_LIMIT_S", "ChapterPlan", "PlannedRun", "backbone_needed",
           "ablation_texts", "budget_texts", "build_plan", "chapter_params", "format_plan", "missing_runs", "planned_runs"]

#: the whole book in GPU seconds (about 25 minutes of a 15-30 minute window)
TOTAL_LIMIT_S = 1500.0
#: one chapter, and chapters 3-5 together: one device command (at most 10 minutes, 9 planned)
CHAPTER_LIMIT_S = CHAIN_LIMIT_S = 540.0


@dataclass
class PlannedRun:
    """One run of a chapter as the plan sees it."""

    chapter: str
    group: str
    label: str
    seed: int
    config: TrainConfig
    key: str
    images: int
    seconds: float
    shared_with: str | None = None  #: an earlier chapter that has the same run (counted there)
    stored: bool = False


@dataclass
class ChapterPlan:
    """A chapter's runs and its estimate (notebook overhead, runs, compile warm-ups)."""

    name: str
    runs: list[PlannedRun] = field(default_factory=list)
    compiles: int = 0

    @property
    def counted(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.shared_with is None]

    @property
    def images(self) -> int:
        return sum(r.images for r in self.counted)

    @property
    def seconds(self) -> float:
        return NOTEBOOK_OVERHEAD_S + COMPILE_WARMUP_S * self.compiles + sum(r.seconds for r in self.counted)

    @property
    def seconds_to_train(self) -> float:
        left = [r for r in self.counted if not r.stored]
        shapes = {compile_shape(r.config) for r in left} - {None}
        return NOTEBOOK_OVERHEAD_S + COMPILE_WARMUP_S * len(shapes) + sum(r.seconds for r in left)


def _chapters(book: Path) -> list[Path]:
    return sorted(p for p in book.glob("*.ipynb") if p.stem[:2].isdigit())


def chapter_params(path: str | Path, *, smoke: bool = False) -> dict[str, Any]:
    """A notebook's parameters-cell defaults, with its smoke reductions when ``smoke``."""
    params = notebook_defaults(path)
    if smoke:
        params.update(SMOKE.get(Path(path).stem, {}))
        params["smoke"] = True
    return params


def planned_runs(name: str, params: Mapping[str, Any], *, params3: Mapping[str, Any] | None = None,
                 smoke: bool = False) -> Iterable[tuple[str, str, int, TrainConfig]]:
    """(group, label, seed, config) of every run chapter ``name`` sweeps, as :class:`.chapter.Chapter` builds them."""
    for group, variants in chapter_groups(name, params, params3=params3, smoke=smoke).items():
        for label, changes in variants.items():
            for seed in seeds_of(params):
                yield group, label, seed, run_config(params, changes, seed=seed, extra={"label": label})


def build_plan(*, book: str | Path | None = None, smoke: bool = False, benchmarks: list[dict] | None = None,
               packed: int = 1, params: Mapping[str, Mapping[str, Any]] | None = None) -> list[ChapterPlan]:
    """One :class:`ChapterPlan` per numbered notebook of ``book`` (default ``<repo>/book``), in order.

    ``params``: chapter -> parameters to use instead of its notebook's (e.g. a running chapter's own).
    """
    book = Path(book) if book is not None else repo_root() / "book"
    params = {p.stem: dict((params or {}).get(p.stem) or chapter_params(p, smoke=smoke)) for p in _chapters(book)}
    stored = {e.key for e in store.entries(smoke=smoke)}
    seen: dict[str, str] = {}
    plans = []
    for name, values in params.items():
        plan = ChapterPlan(name)
        for group, label, seed, config in planned_runs(name, values, params3=params.get(TRANSFER_CHAIN[0]),
                                                       smoke=smoke):
            key = run_key(config)
            cost = run_cost(config, benchmarks=benchmarks, packed=packed)
            plan.runs.append(PlannedRun(name, group, label, seed, config, key, cost.images, cost.seconds,
                                        shared_with=seen.get(key), stored=key in stored))
            seen.setdefault(key, name)
        plan.compiles = len({compile_shape(r.config) for r in plan.counted} - {None})
        plans.append(plan)
    return plans


def missing_runs(chapters: Iterable[str], *, smoke: bool, book: str | Path | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> list[PlannedRun]:
    """The runs of ``chapters`` (with their notebooks' defaults) that the result store does not have."""
    wanted = set(chapters)
    return [r for plan in build_plan(book=book, smoke=smoke, params=params) if plan.name in wanted
            for r in plan.runs if not r.stored]


def backbone_needed(params3: Mapping[str, Any], *, smoke: bool, book: str | Path | None = None) -> bool:
    """Whether chapters 4-5 (their notebooks' defaults on chapter 3's backbone as ``params3`` makes it)
    still miss runs in the store: then chapter 3's weights must be on this machine."""
    return bool(missing_runs(TRANSFER_CHAIN[1:], smoke=smoke, book=book, params={TRANSFER_CHAIN[0]: params3}))


def budget_texts(chapter: str, *, book: str | Path | None = None) -> dict[str, str]:
    """What the book's budget gives ``chapter`` in its FULL configuration (its notebook's defaults),
    as glue texts: ``budget_seconds``, ``budget_runs``, ``budget_epochs`` (when it has ``epochs``) and
    ``budget_basis`` (measured throughput or the named FLOPs assumptions)."""
    book = Path(book) if book is not None else repo_root() / "book"
    benchmarks = load_benchmarks(repo_root() / "benchmarks" / "results")
    plan = next(p for p in build_plan(book=book, benchmarks=benchmarks) if p.name == chapter)
    defaults = chapter_params(book / f"{chapter}.ipynb")
    texts = {"budget_seconds": f"{plan.seconds:.0f} s", "budget_runs": str(len(plan.counted)),
             "budget_basis": "measured throughput" if benchmarks else f"FLOPs at assumed {GPU} rates"}
    if "epochs" in defaults:
        texts["budget_epochs"] = str(defaults["epochs"])
    return texts


def ablation_texts(*, book: str | Path | None = None) -> dict[str, str]:
    """``ablation_seconds``: what chapter 5's ablation (``-p ablation True``) adds to the full budget."""
    book = Path(book) if book is not None else repo_root() / "book"
    name = TRANSFER_CHAIN[2]
    params = chapter_params(book / f"{name}.ipynb")
    seconds = [next(p.seconds for p in build_plan(book=book, params={name: {**params, "ablation": on}})
                    if p.name == name) for on in (False, True)]
    return {"ablation_seconds": f"{seconds[1] - seconds[0]:.0f} s"}


def format_plan(plans: list[ChapterPlan], benchmarks: list[dict] | None = None) -> str:
    """The plan as text: assumptions, one line per chapter, chapters 3-5 together, and last ``total: N s``."""
    lines = [assumptions(benchmarks or []), "",
             f"{'chapter':<20} {'runs':>5} {'shared':>6} {'stored':>6} {'images':>12} {f'est. {GPU} s':>12} "
             f"{'to train s':>10}"]
    for p in plans:
        lines.append(f"{p.name:<20} {len(p.counted):>5} {len(p.runs) - len(p.counted):>6} "
                     f"{sum(r.stored for r in p.counted):>6} {p.images:>12,} {p.seconds:>12.0f} "
                     f"{p.seconds_to_train:>10.0f}")
    chain = sum(p.seconds for p in plans if p.name in TRANSFER_CHAIN)
    lines.append(f"{'+'.join(n[:2] for n in TRANSFER_CHAIN)} in one device command: {chain:.0f} s "
                 f"(limit {CHAIN_LIMIT_S:.0f} s); per chapter limit {CHAPTER_LIMIT_S:.0f} s, book limit "
                 f"{TOTAL_LIMIT_S:.0f} s")
    lines.append(f"total: {sum(p.seconds for p in plans):.0f} s")
    return "\n".join(lines)
