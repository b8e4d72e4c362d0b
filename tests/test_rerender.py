"""Re-rendering a chapter from the result store on a CPU, without training and without the backbone's weights.

Chapter 3 and chapter 4 run once in the smoke configuration, publishing into a scratch store;
chapter 4 then runs again with training switched off, a fresh runs folder (no weights, no local
store) and fresh records: every number, table and figure must come out the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from convnext_report.report import paths, plan

REPO = Path(__file__).resolve().parents[1]
SMALL3 = ["-p", "epochs", "1", "-p", "max_steps_per_epoch", "2", "-p", "train_per_class", "10",
          "-p", "test_per_class", "10"]
SMALL4 = ["-p", "epochs", "2"]

pytestmark = pytest.mark.slow


def papermill(chapter: str, out: Path, args: list[str], **env: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVNEXT_REPORT_") or k == "CONVNEXT_REPORT_CACHE"}
    base.update(PYTHONPATH=str(REPO / "lib"), CONVNEXT_REPORT_SMOKE="1", **env)
    done = subprocess.run([sys.executable, "-m", "papermill", "--cwd", "book", "-k", "python3", "--no-progress-bar",
                           f"book/{chapter}.ipynb", str(out), *args], cwd=REPO, env=base, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def outputs(path: Path) -> list[tuple[str, str]]:
    """(cell source, output) of every result shown, except the banner and the backbone's local path."""
    shown = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or "banner()" in cell.source or "transfer_source" in cell.source:
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for kind in ("text/plain", "text/html", "image/png"):
                if kind in data:
                    shown.append((cell.source, str(data[kind])))
    return shown


def test_a_chapter_re_renders_from_the_store_without_training(tmp_path, data_root, monkeypatch):
    common = dict(CONVNEXT_REPORT_STORE=str(tmp_path / "results"), CONVNEXT_REPORT_DATA=str(data_root))
    first = dict(common, CONVNEXT_REPORT_PUBLISH="1", CONVNEXT_REPORT_RUNS=str(tmp_path / "runs_a"),
                 CONVNEXT_REPORT_RECORDS=str(tmp_path / "records_a"))
    papermill("03_source_backbone", tmp_path / "03.ipynb", SMALL3, **first)
    papermill("04_baseline", tmp_path / "04a.ipynb", SMALL4, **first)
    stored = sorted((tmp_path / "results" / "smoke" / "04_baseline").iterdir())
    assert len(stored) == 2 and not list((tmp_path / "results").rglob("*.pt"))

    again = dict(common, CONVNEXT_REPORT_TRAIN="0", CONVNEXT_REPORT_RUNS=str(tmp_path / "runs_b"),
                 CONVNEXT_REPORT_RECORDS=str(tmp_path / "records_b"))
    papermill("04_baseline", tmp_path / "04b.ipynb", SMALL4, **again)
    assert not (tmp_path / "runs_b" / "backbones").exists(), "the re-render needed no weights"
    a, b = (json.loads((tmp_path / r / "04_baseline.json").read_text()) for r in ("records_a", "records_b"))
    assert b["results"] == a["results"]
    assert [r["from"] for r in b["runs"]] == ["store", "store"] and [r["from"] for r in a["runs"]] == ["trained"] * 2
    same = ("top1", "selected_epoch", "epochs_run", "gap", "minutes", "device", "key")
    assert [{k: r[k] for k in same} for r in b["runs"]] == [{k: r[k] for k in same} for r in a["runs"]]
    assert outputs(tmp_path / "04b.ipynb") == outputs(tmp_path / "04a.ipynb")
    banner = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(tmp_path / "04b.ipynb", 4).cells
                       if c.cell_type == "code" for o in c.get("outputs", []))
    assert "2 read back from the result store" in banner

    # the plan builds the same runs (keys) as the notebooks did: nothing of chapter 4 is missing
    monkeypatch.setenv(paths.STORE_ENV, str(tmp_path / "results"))
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs_b"))
    params = {"03_source_backbone": json.loads((tmp_path / "records_a" / "03_source_backbone.json").read_text())["parameters"],
              "04_baseline": a["parameters"]}
    assert plan.missing_runs(["04_baseline"], smoke=True, params=params) == []
