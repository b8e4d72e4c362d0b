"""The GPU machine's command on CPU: ``tools/device_run`` (smoke, chapters 2 and 3) and ``tools/device_unpack``."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".venv", "runs", "_build", ".git", "__pycache__", ".pytest_cache", "test-output",
                                ".carry", ".whl")
#: chapter 3 in smoke mode, made smaller still (passed values win over the smoke reductions)
SMALL = ["-p", "epochs", "1", "-p", "max_steps_per_epoch", "2", "-p", "train_per_class", "10",
         "-p", "test_per_class", "10"]

pytestmark = pytest.mark.slow


def copy_repo(dest: Path) -> Path:
    """The repository without its result store: the runs these tests make are the only entries."""
    shutil.copytree(REPO, dest, ignore=IGNORE)
    shutil.rmtree(dest / "results", ignore_errors=True)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the book's switches (device_run sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVNEXT_REPORT_") or k == "CONVNEXT_REPORT_CACHE"}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def device_output(tmp_path_factory, data_root) -> Path:
    """device_run on a copy of the repository: chapter 03 and the status page, smoke, wheels already installed."""
    tmp = tmp_path_factory.mktemp("device")
    machine = copy_repo(tmp / "machine")
    out = tmp / "out"
    done = subprocess.run(
        [sys.executable, "tools/device_run", "--data", str(data_root), "--no-install", "--smoke", "--minutes", "8",
         "--out", str(out), "--scratch", str(tmp / "scratch"), "--chapters", "03_source_backbone", "status",
         "--", *SMALL], cwd=machine, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


def test_device_run_leaves_one_small_folder(device_output):
    files = sorted(p.name for p in device_output.iterdir())
    assert files == ["device_run.log", "results.tar.gz"] and len(files) <= 8
    assert all(p.stat().st_size < 16 * 2**20 for p in device_output.iterdir())
    with tarfile.open(device_output / "results.tar.gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("device_run.json"))
    assert manifest["chapters"] == {"03_source_backbone": "ok", "status": "ok"}
    assert {"book/status.ipynb", "book/03_source_backbone.ipynb", "book/records/03_source_backbone.json"} <= set(names)
    entry = [n for n in names if n.startswith("results/smoke/03_source_backbone/") and n.endswith("/store.json")]
    assert len(entry) == 1 and any(n.endswith("/backbone.json") for n in names)
    assert not [n for n in names if n.endswith((".pt", ".pth", ".safetensors"))]
    log = (device_output / "device_run.log").read_text()
    assert "03_source_backbone: ok" in log and "timm 1." in log and "no CUDA device" in log  # the preflight


def test_device_run_starts_no_chapter_when_an_import_fails(tmp_path):
    """A missing or broken package on the GPU machine costs seconds, not a chapter's training."""
    broken = tmp_path / "broken" / "timm"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('timm is broken on this machine')\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "tools/device_run", "--data", str(tmp_path), "--no-install", "--smoke", "--minutes", "8",
         "--out", str(out), "--scratch", str(tmp_path / "scratch"), "--chapters", "03_source_backbone"],
        cwd=REPO, env=clean_env(PYTHONPATH=str(broken.parent)), capture_output=True, text=True, timeout=120)
    log = (out / "device_run.log").read_text()
    assert done.returncode == 1 and "preflight failed" in log and "timm is broken on this machine" in log
    assert "03_source_backbone: skipped: the preflight failed" in log and "papermill (" not in log
    with tarfile.open(out / "results.tar.gz") as tar:
        assert json.load(tar.extractfile("device_run.json"))["chapters"] == {
            "03_source_backbone": "skipped: the preflight failed"}


def test_device_unpack_writes_only_what_is_new(device_output, tmp_path):
    target = copy_repo(tmp_path / "repo")
    run = [sys.executable, "tools/device_unpack", str(device_output)]
    done = subprocess.run(run, cwd=target, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "chapter 03_source_backbone: ok" in done.stdout and "new: results/smoke/03_source_backbone/" in done.stdout
    entry = next((target / "results" / "smoke" / "03_source_backbone").iterdir())
    meta = json.loads((entry / "store.json").read_text())
    assert meta["chapter"] == "03_source_backbone" and meta["configuration"] == "smoke"
    assert set(meta["files"]) == {p.name for p in entry.iterdir()} - {"store.json"}
    record = json.loads((target / "book" / "records" / "03_source_backbone.json").read_text())
    assert record["configuration"] == "smoke" and record["runs"][0]["key"] == meta["key"]
    again = subprocess.run(run, cwd=target, capture_output=True, text=True, timeout=120)
    assert " 0 new, 0 changed" in again.stdout


def test_device_unpack_refuses_anything_outside_its_folders(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("results/x/store.json", "lib/convnext_report/evil.py", "../outside.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.tar.gz").write_bytes(buffer.getvalue())
    done = subprocess.run([sys.executable, str(REPO / "tools" / "device_unpack"), str(tmp_path / "out"),
                           "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refused, nothing written" in done.stderr
    assert "lib/convnext_report/evil.py" in done.stderr and "../outside.txt" in done.stderr
    assert not (tmp_path / "repo").exists()


def test_split_archives_are_joined(device_output, tmp_path):
    blob = (device_output / "results.tar.gz").read_bytes()
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        (parts / f"results.tar.gz.part{i:02d}").write_bytes(blob[i * len(blob) // 3:(i + 1) * len(blob) // 3])
    done = subprocess.run([sys.executable, str(REPO / "tools" / "device_unpack"), str(parts), "--dry-run",
                           "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "would write" in done.stdout and not (tmp_path / "repo").exists()


def test_device_carry_copies_what_the_chapters_read(tmp_path, data_root):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("timm-1.0.31-py3-none-any.whl", "papermill-2.7.0-py3-none-any.whl", "datasets-5.2.0-py3-none-any.whl"):
        (wheels / name).write_bytes(b"wheel")
    dest = tmp_path / "carry"
    run = [sys.executable, "tools/device_carry", "--data", str(data_root), "--wheels", str(wheels), "--dest", str(dest)]
    done = subprocess.run([*run, "--chapters", "06_optimisers"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["cifar100"]  # chapter 6 reads CIFAR-100 only
    assert sorted(p.name for p in (dest / "wheels").iterdir()) == ["papermill-2.7.0-py3-none-any.whl",
                                                                  "timm-1.0.31-py3-none-any.whl"]
    assert "of 64 MiB" in done.stdout and not (tmp_path / "carry.partial").exists()
    bad = subprocess.run([*run, "--chapters", "99_nothing"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown chapters ['99_nothing']" in bad.stderr
    assert (dest / "data" / "cifar100").is_dir()  # a refused call leaves the last carry folder as it was
