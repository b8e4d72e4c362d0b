"""The book after a GPU window, without one: fake full-configuration store entries and records for every
headline, the results page and the status page rendered from them (nothing trained), built to HTML.

Everything lives in temporary folders: the fake numbers are never written into the repository, and a page
never shows them outside this test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from convnext_report.config import TrainConfig
from convnext_report.report import chapter, claims, results, store
from convnext_report.report.runner import Obtained
from convnext_report.summary import run_summary

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

#: chapter -> (headline prefix or key, {label: (config changes, held-out accuracies per epoch)})
FAKE = {
    "03_source_backbone": ("backbone_top1", {"backbone": ({"model": "convnext_tiny", "dataset": "tiny-imagenet-32"},
                                                          (0.40, 0.55, 0.58))}),
    "04_baseline": ("baseline_top1", {"baseline": ({"model": "convnext_tiny", "freeze_backbone": True},
                                                   (0.50, 0.62, 0.61))}),
    "05_improved": ("improved_top1", {"improved": ({"model": "convnext_tiny", "head": "attention"},
                                                   (0.55, 0.70, 0.71))}),
    "06_optimisers": ("opt_source", {"convnextv2_base / sgd": ({"model": "convnextv2_base", "optimizer": "sgd",
                                                                "extra": {"recipe": "source"}}, (0.25, 0.34)),
                                     "convnextv2_atto / adamw": ({"model": "convnextv2_atto"}, (0.30, 0.47))}),
    "07_normalisation": ("norm_source", {"layernorm": ({"model": "convnextv2_tiny", "optimizer": "radam"},
                                                       (0.25, 0.33)),
                                         "dyt": ({"model": "convnextv2_tiny", "optimizer": "radam", "norm": "dyt"},
                                                 (0.24, 0.31))}),
}


FAKE_06 = "06_optimisers"


def _fake_chapter(name: str, folder: Path, finished_run) -> dict:
    """Stored fake runs (two seeds a label) and the record the chapter would write in the full configuration."""
    prefix, labels = FAKE[name]
    ch = chapter.start(name, {}, title=f"Chapter {name[:2]}")
    ch.record["environment"].update(device="NVIDIA H200", device_type="cuda")
    runs: dict[str, list] = {}
    for label, (changes, held_out) in labels.items():
        for seed in (0, 1):
            extra = {"chapter": name, "configuration": "full", "label": label, **changes.get("extra", {})}
            config = TrainConfig(**{**changes, "extra": extra}, seed=seed, epochs=len(held_out) + 2)
            run_folder = finished_run(folder / f"{name}-{label}-{seed}".replace(" / ", "-"), config,
                                            tuple(v + 0.01 * seed for v in held_out))
            key = store.run_key(config)
            entry = store.put(run_folder, key=key, chapter=name, label=label, seed=seed, smoke=False)
            ch.obtained.append(Obtained(run=store.load(entry), key=key, source="store", entry=entry))
            runs.setdefault(label, []).append(ch.obtained[-1].run)
    if name == "04_baseline":
        rows = [results.headline("baseline_top1", runs["baseline"], experiment="Frozen backbone + linear head",
                                 source_key="000_baseline"),
                results.headline("baseline_gap", runs["baseline"], experiment="gap", metric="gap (points)",
                                 value="gap")]
    elif len(labels) == 1:
        rows = [results.headline(prefix, next(iter(runs.values())), experiment=f"{name} headline",
                                 source_key="000_improved" if name == "05_improved" else None)]
    else:  # chapter 6: the source recipe's runs and the small-image recipe's
        source = {k: v for k, v in runs.items() if v[0].config.extra.get("recipe") == "source" or name != FAKE_06}
        rows = results.headlines(prefix, source, title="Source recipe", source_key=claims.source_001_key)
        rows += results.headlines("opt_small_image", {k: v for k, v in runs.items() if k not in source},
                                  title="Small-image recipe")
    return json.loads(ch.finish(rows).read_text())


@pytest.fixture(scope="module")
def full_book(tmp_path_factory, finished_run) -> Path:
    """A copy of the book whose local layer holds fake full-configuration runs and records of every training
    chapter; the results and status pages executed from them (papermill), then built (Jupyter Book)."""
    root = tmp_path_factory.mktemp("full")
    repo, runs = root / "repo", root / "runs"
    shutil.copytree(REPO / "book", repo / "book", ignore=shutil.ignore_patterns("records", "__pycache__"))
    shutil.copytree(REPO / "benchmarks" / "results", repo / "benchmarks" / "results")
    shutil.copy2(REPO / "_config.yml", repo / "_config.yml")
    shutil.copytree(REPO / "_static", repo / "_static")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        mp.setenv(store.RUNS_ENV, str(runs))
        (repo / "_toc.yml").write_text("format: jb-book\nroot: book/08_results\nchapters:\n  - file: book/status\n")
        for name in FAKE:
            _fake_chapter(name, root / "trained", finished_run)
        for page in ("08_results", "status"):
            papermill.execute_notebook(str(repo / "book" / f"{page}.ipynb"), str(repo / "book" / f"{page}.ipynb"),
                                       cwd=str(repo / "book"), progress_bar=False, kernel_name="python3")
    done = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(repo), "--path-output",
                           str(root / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return root / "out" / "_build" / "html" / "book"


def _text(html_file: Path) -> str:
    """The page's visible text, roughly: tags removed, whitespace collapsed."""
    main = html_file.read_text().split('<main', 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", "", main, flags=re.S)))


def test_the_results_prose_carries_the_numbers(full_book):
    text = _text(full_book / "08_results.html")
    assert "Transfer (source 000, chapters 3–5). Our backbone" in text
    assert re.search(r"Tiny-ImageNet test split\. Transferred to CIFAR-100 with a frozen backbone and a linear head "
                     r"it reaches \d+\.\d ± \d+\.\d % \(2 seeds\), with a train − test gap of", text)
    assert re.search(r"the best model and optimiser reach \d+\.\d ± \d\.\d % \(2 seeds\) with "
                     r"convnextv2_base / sgd; the small-image recipe reaches \d+\.\d ± \d\.\d % \(2 seeds\)", text)
    assert re.search(r"LayerNorm reaches \d+\.\d ± \d\.\d % \(2 seeds\) and DyT \d+\.\d", text)
    shown = text.split("Status at a glance", 1)[1]  # after the (folded) parameters cell
    assert "smoke run" not in shown and "No results yet" not in shown and "None" not in shown and "nan" not in shown
    assert "82.61 % (000)" in text and "NVIDIA H200" in text and "Download this table as CSV" in text
    glance = text.split("Status at a glance", 1)[1][:600]
    assert re.search(r"the results of chapters 3 ?, 4 ?, 5 ?, 6 ? and 7", glance) and "ran only in the smoke" not in glance


def test_the_status_page_says_full_and_links_every_chapter(full_book):
    text = _text(full_book / "status.html")
    for name in FAKE:  # a link to the page (this small build has only two pages: its target is not resolved)
        assert f"{int(name[:2])}. Chapter {name[:2]}" in text
    assert "2 runs (2 from the store) on NVIDIA H200, 2026-12-01, 3.0 min (3.0 GPU min)" in text and "**" not in text
    assert text.count(" full ") >= len(FAKE) and "tools/execute_chapters --chapters 04_baseline" in text
