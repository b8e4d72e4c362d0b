"""The remote tools on CPU: ``tools/remote_run`` (smoke, chapter 3 and the status page; a command killed
after its first stored run), ``tools/remote_unpack`` (cut-off archives included), ``tools/remote_carry``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the smoke configuration made smaller still (a parameter file: each value goes to the chapters that declare it)
SMALL = "epochs: 1\nmax_steps_per_epoch: 2\ntrain_per_class: 10\ntest_per_class: 10\n"

pytestmark = pytest.mark.slow


def remote_run(machine: Path, out: Path, scratch: Path, chapters: list[str], env: dict, **popen) -> subprocess.Popen:
    small = machine / "small.yaml"
    small.write_text(SMALL)
    command = [sys.executable, "tools/remote_run", "--data", env["CONVNEXT_REPORT_DATA"], "--no-install", "--smoke",
               "--minutes", "8", "--out", str(out), "--scratch", str(scratch), "-f", str(small),
               "--chapters", *chapters]
    return subprocess.Popen(command, cwd=machine, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def remote_output(tmp_path_factory, data_root, copy_repo, clean_env) -> Path:
    """remote_run on a copy of the repository: chapter 03 and the status page, smoke, wheels already installed."""
    tmp = tmp_path_factory.mktemp("remote")
    proc = remote_run(copy_repo(tmp / "machine"), tmp / "out", tmp / "scratch", ["03_source_backbone", "status"],
                      clean_env(CONVNEXT_REPORT_DATA=str(data_root)))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-4000:]
    return tmp / "out"


def test_remote_run_leaves_a_few_files_and_every_run_with_its_times(remote_output):
    assert sorted(p.name for p in remote_output.iterdir()) == ["chapters.tar", "remote_run.log", "results.tar"]
    runs = members(remote_output / "results.tar")
    entry = [n for n in runs if n.startswith("results/smoke/03_source_backbone/")]
    assert entry[-1].endswith("/store.json") and {n.rsplit("/", 1)[1] for n in entry} >= {"history.csv", "eval.npz"}
    assert not [n for n in runs if n.endswith((".pt", ".pth", ".safetensors"))]
    pages = members(remote_output / "chapters.tar")
    assert {"book/status.ipynb", "book/03_source_backbone.ipynb", "book/records/03_source_backbone.json"} <= set(pages)
    manifest = json.loads(pages["remote_run.json"])
    assert manifest["chapters"] == {"03_source_backbone": "ok", "status": "ok"}
    [row] = manifest["runs"]["trained"]
    assert row["estimate_s"] > 0 and row["measured_s"] > 0 and row["corrected_s"] >= row["estimate_s"]
    record = json.loads(pages["book/records/03_source_backbone.json"])
    assert [r["from"] for r in record["runs"]] == ["store"]  # the chapter found the run train_missing stored
    log = (remote_output / "remote_run.log").read_text()
    assert "03_source_backbone: ok" in log and "timm 1." in log and "no CUDA device" in log  # the preflight
    assert "estimate_s" in log and "measured_s" in log


def test_remote_run_starts_nothing_when_an_import_fails(tmp_path, clean_env):
    """A missing or broken package on the remote machine costs seconds, not a chapter's training."""
    broken = tmp_path / "broken" / "timm"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('timm is broken on this machine')\n")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "tools/remote_run", "--data", str(tmp_path), "--no-install", "--smoke", "--minutes", "8",
         "--out", str(out), "--scratch", str(tmp_path / "scratch"), "--chapters", "03_source_backbone"],
        cwd=REPO, env=clean_env(PYTHONPATH=str(broken.parent)), capture_output=True, text=True, timeout=120)
    log = (out / "remote_run.log").read_text()
    assert done.returncode == 1 and "preflight failed" in log and "timm is broken on this machine" in log
    assert "train_missing" not in log and not (out / "results.tar").exists()
    assert json.loads(members(out / "chapters.tar")["remote_run.json"])["chapters"] == {
        "03_source_backbone": "skipped: the preflight failed"}


def test_remote_unpack_writes_only_what_is_new(remote_output, tmp_path, copy_repo):
    target = copy_repo(tmp_path / "repo")
    command = [sys.executable, "tools/remote_unpack", str(remote_output)]
    done = subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "chapter 03_source_backbone: ok" in done.stdout and "new: results/smoke/03_source_backbone/" in done.stdout
    entry = next((target / "results" / "smoke" / "03_source_backbone").iterdir())
    meta = json.loads((entry / "store.json").read_text())
    assert meta["chapter"] == "03_source_backbone" and meta["configuration"] == "smoke"
    assert set(meta["files"]) == {p.name for p in entry.iterdir()} - {"store.json"}
    record = json.loads((target / "book" / "records" / "03_source_backbone.json").read_text())
    assert record["configuration"] == "smoke" and record["runs"][0]["key"] == meta["key"]
    again = subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=120)
    assert " 0 new, 0 changed" in again.stdout


def test_remote_unpack_refuses_anything_outside_its_folders(tmp_path):
    (tmp_path / "out").mkdir()
    with tarfile.open(tmp_path / "out" / "results.tar", "w") as tar:
        for name in ("results/x/store.json", "lib/convnext_report/evil.py", "../outside.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    done = subprocess.run([sys.executable, str(REPO / "tools" / "remote_unpack"), str(tmp_path / "out"),
                           "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refused, nothing written" in done.stderr
    assert "lib/convnext_report/evil.py" in done.stderr and "../outside.txt" in done.stderr
    assert not (tmp_path / "repo").exists()


def test_split_archives_are_joined(remote_output, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for name in ("results.tar", "chapters.tar"):
        blob = (remote_output / name).read_bytes()
        for i in range(3):
            (parts / f"{name}.part{i:02d}").write_bytes(blob[i * len(blob) // 3:(i + 1) * len(blob) // 3])
    done = subprocess.run([sys.executable, str(REPO / "tools" / "remote_unpack"), str(parts), "--dry-run",
                           "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "would write" in done.stdout and "cut off" not in done.stdout
    assert "chapter status: ok" in done.stdout and not (tmp_path / "repo").exists()


def _entry(tar: tarfile.TarFile, folder: str, text: bytes) -> None:
    """A store entry: one file, then its store.json (the file's sha256), as train_missing appends them."""
    meta = json.dumps({"key": folder, "files": {"log.txt": hashlib.sha256(text).hexdigest()}}).encode()
    for name, data in (("log.txt", text), ("store.json", meta)):
        info = tarfile.TarInfo(f"{folder}/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_a_cut_off_archive_gives_its_whole_entries(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _entry(tar, "results/c/a-s0-11111111", b"a" * 3000)
        _entry(tar, "results/c/b-s0-22222222", b"b" * 3000)
    blob = buffer.getvalue()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.tar").write_bytes(blob[:blob.index(b"b" * 3000) + 1000])  # cut inside b's log
    done = subprocess.run([sys.executable, str(REPO / "tools" / "remote_unpack"), str(tmp_path / "out"),
                           "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "results.tar was cut off" in done.stdout and "2 new" in done.stdout
    assert sorted(p.name for p in (tmp_path / "repo" / "results" / "c").iterdir()) == ["a-s0-11111111"]
    (tmp_path / "out" / "results.tar").write_bytes(blob[:blob.index(b"b" * 3000) + 3000])  # b's store.json missing
    again = subprocess.run([sys.executable, str(REPO / "tools" / "remote_unpack"), str(tmp_path / "out"),
                            "--into", str(tmp_path / "repo")], capture_output=True, text=True, timeout=60)
    assert "results/c/b-s0-22222222: cut off, left out" in again.stdout and "0 new" in again.stdout


def test_a_window_cut_by_its_time_limit_returns_its_runs_and_the_next_call_continues(tmp_path, data_root, copy_repo,
                                                                                       clean_env):
    """tools/window_1.sh, rehearsed on CPU, is killed (SIGKILL, as a time limit does) once its first run is
    archived: that run unpacks; called again on the same machine, chapter 3's run is not trained again (its weights
    are still there) and chapter 4's runs are."""
    machine, scratch, out = copy_repo(tmp_path / "machine"), tmp_path / "scratch", tmp_path / "out"
    env = clean_env(CONVNEXT_REPORT_DATA=str(data_root))
    proc = subprocess.Popen(["bash", "tools/window_1.sh", "--rehearse", "--python", sys.executable, "--data",
                             str(data_root), "--scratch", str(scratch), "--out", str(out)], cwd=machine, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if any(n.endswith("/store.json") for n in _names(out / "results.tar")):
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the command ended before its first run was archived"
    os.killpg(proc.pid, signal.SIGKILL)  # the command and everything it started (one process group)
    proc.wait(timeout=60)
    for _ in range(40):  # its training process follows within moments
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.25)
    else:
        pytest.fail("processes of the killed command are still running")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "remote_unpack"), str(out), "--into", str(machine)],
                          capture_output=True, text=True, timeout=60)  # what the next call carries
    assert done.returncode == 0, done.stderr
    [stored] = list((machine / "results" / "smoke" / "03_source_backbone").iterdir())
    assert (stored / "store.json").is_file() and (stored / "history.csv").is_file()
    again = subprocess.run([sys.executable, "tools/remote_run", "--data", str(data_root), "--no-install", "--smoke",
                            "-f", str(scratch / "small.yaml"), "--no-render", "--minutes", "8", "--out", str(tmp_path / "out2"),
                            "--scratch", str(scratch), "--site", str(scratch / "site"), "--workers", "1",
                            "--chapters", "03_source_backbone", "04_baseline"], cwd=machine, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    trained = json.loads(members(tmp_path / "out2" / "chapters.tar")["remote_run.json"])["runs"]["trained"]
    assert [r["chapter"] for r in trained] == ["04_baseline", "04_baseline"]


def _names(tar_path: Path) -> list[str]:
    """The names of a tar being written (a member cut off at its end is left out)."""
    try:
        with tarfile.open(tar_path) as tar:
            return tar.getnames()
    except (tarfile.ReadError, EOFError, OSError):
        return []


def test_remote_carry_copies_what_the_chapters_read(tmp_path, data_root):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("timm-1.0.31-py3-none-any.whl", "papermill-2.7.0-py3-none-any.whl", "datasets-5.2.0-py3-none-any.whl"):
        (wheels / name).write_bytes(b"wheel")
    dest = tmp_path / "carry"
    run = [sys.executable, "tools/remote_carry", "--data", str(data_root), "--wheels", str(wheels), "--dest", str(dest),
           "--no-test-wheels"]
    done = subprocess.run([*run, "--chapters", "06_optimisers"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["cifar100"]  # chapter 6 reads CIFAR-100 only
    assert sorted(p.name for p in (dest / "wheels").iterdir()) == ["papermill-2.7.0-py3-none-any.whl",
                                                                  "timm-1.0.31-py3-none-any.whl"]
    assert "of 64 MiB" in done.stdout and not (tmp_path / "carry.partial").exists()
    bad = subprocess.run([*run, "--chapters", "99_nothing"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown chapters ['99_nothing']" in bad.stderr
    assert (dest / "data" / "cifar100").is_dir()  # a refused call leaves the last carry folder as it was


def test_train_missing_starts_no_run_that_would_end_after_its_deadline(tmp_path, clean_env):
    """A deadline seconds away: the plan's estimate of every run of chapter 6 ends after it, so none starts."""
    (tmp_path / "small.yaml").write_text(SMALL)
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "tools/train_missing", "--chapters", "06_optimisers", "--smoke", "-f",
                           str(tmp_path / "small.yaml"), "--minutes", "0.05", "--report", str(report)], cwd=REPO,
                          env=clean_env(CONVNEXT_REPORT_RUNS=str(tmp_path / "runs")), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    runs = json.loads(report.read_text())
    assert runs["trained"] == [] and len(runs["not_started"]) == 4
    assert "not started: 06_optimisers" in done.stdout and not (tmp_path / "runs" / "06_optimisers-smoke").exists()
