"""Rerunning, publishing, and re-rendering a chapter from the result store on a CPU.

In a copy of the repository without its result store: chapters 3 and 4 run with plain papermill in the
smoke configuration, made smaller still by a parameter file, and write nothing but the runs folder;
``publish`` copies what they used into ``results/`` and ``book/``; ``tools/execute_chapters --no-train``
then re-renders chapter 4 with a fresh runs folder (no weights, no local store): it trains nothing and
every number, table and figure comes out the same.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL3 = "epochs: 1\nmax_steps_per_epoch: 2\ntrain_per_class: 10\ntest_per_class: 10\n"
SMALL4 = "epochs: 2\n"

pytestmark = pytest.mark.slow


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


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout


def test_rerun_publish_and_re_render_without_training(tmp_path, data_root, copy_repo, clean_env):
    repo = copy_repo(tmp_path / "repo")
    (tmp_path / "small3.yaml").write_text(SMALL3)
    (tmp_path / "small4.yaml").write_text(SMALL4)

    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the copy")

    def call(*command: str, runs: str) -> subprocess.CompletedProcess:
        env = clean_env(CONVNEXT_REPORT_DATA=str(data_root), CONVNEXT_REPORT_RUNS=str(tmp_path / runs),
                        PYTHONPATH=str(repo / "lib"))
        return subprocess.run([sys.executable, *command], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=900)

    for chapter, small in (("03_source_backbone", "small3"), ("04_baseline", "small4")):
        done = call("-m", "papermill", "--cwd", "book", "-k", "python3", "--no-progress-bar", f"book/{chapter}.ipynb",
                    str(tmp_path / f"{chapter}.ipynb"), "-f", f"book/params/{chapter}.smoke.yaml",
                    "-f", str(tmp_path / f"{small}.yaml"), runs="runs_a")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert git(repo, "status", "--porcelain") == "", "a rerun writes nothing but its runs folder"

    done = call("-m", "convnext_report", "publish", "03_source_backbone", "04_baseline", runs="runs_a")
    assert done.returncode == 0, done.stderr
    stored = sorted((repo / "results" / "smoke" / "04_baseline").iterdir())
    assert len(stored) == 2 and not list((repo / "results").rglob("*.pt"))
    assert (repo / "book" / "records" / "04_baseline.json").read_text() == \
        (tmp_path / "runs_a" / "records" / "04_baseline.json").read_text()

    refused = call("tools/execute_chapters", "--no-train", "--smoke", "--chapters", "05_improved", runs="runs_b")
    assert refused.returncode == 1 and "05_improved: improved (seed 0" in refused.stderr
    assert not (tmp_path / "runs_b" / "notebooks").exists(), "refused before executing anything"

    done = call("tools/execute_chapters", "--no-train", "--smoke", "-f", str(tmp_path / "small4.yaml"),
                "--chapters", "04_baseline", runs="runs_b")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "runs_b" / "backbones").exists() and not (tmp_path / "runs_b" / "04_baseline-smoke").exists()
    a = json.loads((tmp_path / "runs_a" / "records" / "04_baseline.json").read_text())
    b = json.loads((repo / "book" / "records" / "04_baseline.json").read_text())  # published by the re-render
    assert b["results"] == a["results"]
    assert [r["from"] for r in b["runs"]] == ["store", "store"] and [r["from"] for r in a["runs"]] == ["trained"] * 2
    same = ("top1", "selected_epoch", "epochs_run", "gap", "minutes", "device", "key")
    assert [{k: r[k] for k in same} for r in b["runs"]] == [{k: r[k] for k in same} for r in a["runs"]]
    assert outputs(repo / "book" / "04_baseline.ipynb") == outputs(tmp_path / "04_baseline.ipynb")
    banner = "\n".join(str(o.get("data", {}).get("text/markdown", ""))
                       for c in nbformat.read(repo / "book" / "04_baseline.ipynb", 4).cells
                       if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Its runs: 2 runs (2 from the store) on " in banner
    assert "- passed with `-p`/`-y`: `epochs` 30 → 2" in banner and "- set by the smoke file: " in banner


@pytest.mark.parametrize("passed, message", [(["-p", "lrr", "0.1"], "['lrr'] is not a parameter of this chapter"),
                                              (["-y", "seeds: []"], "at least one seed is needed")],
                         ids=["unknown-name", "no-seeds"])
def test_papermill_values_the_chapter_cannot_apply_are_refused(tmp_path, passed, message, clean_env):
    """papermill only warns about a name the parameters cell lacks; the chapter refuses it, before any run."""
    env = clean_env(CONVNEXT_REPORT_RUNS=str(tmp_path / "runs"), PYTHONPATH=str(REPO / "lib"))
    done = subprocess.run([sys.executable, "-m", "papermill", "--cwd", "book", "-k", "python3", "--no-progress-bar",
                           "book/04_baseline.ipynb", str(tmp_path / "out.ipynb"), *passed], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and message in done.stdout + done.stderr
    assert not (tmp_path / "runs" / "04_baseline").exists()


def test_a_page_committed_in_the_smoke_configuration_re_renders_in_the_full_one(tmp_path, copy_repo, clean_env,
                                                                                finished_run, data_root,
                                                                                monkeypatch):
    """The committed chapter 6 carries papermill's injected cell of its smoke run. ``tools/execute_chapters``
    in the full configuration (nothing passed but ``smoke``) must replace it: every run of the full
    configuration comes from a fake store here, and the record says full, with nothing trained."""
    from convnext_report.report import plan, store

    repo, runs = copy_repo(tmp_path / "repo"), tmp_path / "runs"
    assert "injected-parameters" in (repo / "book" / "06_optimisers.ipynb").read_text()
    monkeypatch.chdir(repo)
    monkeypatch.setenv(store.RUNS_ENV, str(runs))
    [six] = [p for p in plan.build_plan(estimate=False) if p.name == "06_optimisers"]
    for r in six.runs:
        folder = finished_run(tmp_path / "trained" / r.key[:12], r.config, (0.30, 0.40 + 0.01 * r.seed))
        store.put(folder, key=r.key, chapter=r.chapter, label=r.label, seed=r.seed, smoke=False)
    env = clean_env(CONVNEXT_REPORT_DATA=str(data_root), CONVNEXT_REPORT_RUNS=str(runs), PYTHONPATH=str(repo / "lib"))
    done = subprocess.run([sys.executable, "tools/execute_chapters", "--no-train", "--no-publish", "--chapters",
                           "06_optimisers"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((runs / "records" / "06_optimisers.json").read_text())
    assert record["configuration"] == "full" and not record["changed"]
    assert len(record["runs"]) == len(six.runs) and {r["from"] for r in record["runs"]} == {"store"}
    assert record["results"] and {r["configuration"] for r in record["results"]} == {"full"}
    groups = {(r.config.extra["recipe"], r.config.model, r.config.optimizer) for r in six.runs}
    [table] = [o["data"]["text/markdown"] for c in nbformat.read(runs / "notebooks" / "06_optimisers.ipynb", 4).cells
               if c.cell_type == "code" and 'by=["dataset"' in c.source for o in c.outputs if "data" in o]
    assert len(re.findall(r"^\| cifar100 \|", table, flags=re.M)) == len(groups) == 5, table  # none merged away
