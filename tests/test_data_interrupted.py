"""A decode or cache write stopped by a real signal: the process ends at once, no partial cache entry
stays, and the temporary file of a killed writer is removed by the next process (never a live one's)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_data_decode import _real_rows, _write_cifar_folder

LIB = Path(__file__).resolve().parents[1] / "lib"

# load_split of a 1000-image CIFAR-10 folder, stopped at a chosen point: it prints "ready" there and
# waits, and the test sends the signal. "decode": after 500 images (batches of 100); "write": when half
# of the images' cache file is written.
_CHILD = """
import sys, time
from convnext_report import atomic
from convnext_report.data import decode, load_split

where, data, cache = sys.argv[1:]

def wait_here():
    print("ready", flush=True)
    time.sleep(120)
    sys.exit("not stopped")

if where == "decode":
    real_decode, batches = decode._decode_jpegs, []
    def decode_jpegs(blobs):
        batches.append(len(blobs))
        if len(batches) == 6:
            wait_here()
        return real_decode(blobs)
    decode._BATCH, decode._decode_jpegs = 100, decode_jpegs
else:
    def half_save(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a tensor" * 10_000)
        wait_here()
    atomic.torch.save = half_save
load_split("cifar10", "test", data_dir=data, cache_dir=cache)
"""


def _start(where: str, data: Path, cache: Path) -> subprocess.Popen:
    """The child above, once it waits at ``where``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, where, str(data), str(cache)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([child.stdout], [], [], 120)
    line = child.stdout.readline() if ready else ""
    if line.strip() != "ready":
        child.kill()
        pytest.fail(f"the child never reached {where!r}: {line!r} {child.communicate()}")
    return child


def _files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and "decoded" in p.parts)


@pytest.fixture(scope="module")
def small_data(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    _write_cifar_folder(data, _real_rows(data_root, 1000))
    return data


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig,where", [(signal.SIGINT, "decode"), (signal.SIGTERM, "decode"), (signal.SIGINT, "write")],
                         ids=["SIGINT-decode", "SIGTERM-decode", "SIGINT-write"])  # SIGTERM-write: the test below
def test_a_signal_ends_the_load_at_once_and_leaves_no_cache_entry(small_data: Path, tmp_path: Path,
                                                                  sig: signal.Signals, where: str) -> None:
    cache = tmp_path / "cache"
    child = _start(where, small_data, cache)
    try:
        if where == "write":
            assert [name for name in _files(cache) if name.endswith(".tmp")], "no temporary file was written"
        child.send_signal(sig)
        t0 = time.monotonic()
        _, err = child.communicate(timeout=30)
        assert time.monotonic() - t0 < 10, "the child did not stop promptly"
    finally:
        child.kill()
    if sig == signal.SIGINT:  # KeyboardInterrupt, uncaught
        assert child.returncode in (1, -signal.SIGINT) and err.rstrip().endswith("KeyboardInterrupt"), err
    else:  # Terminated: status 143, as if SIGTERM had killed it
        assert child.returncode == 143, err
    assert _files(cache) == []  # neither a temporary file nor an entry


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_the_next_process_removes_a_killed_writers_temp_file_and_keeps_a_live_ones(small_data: Path,
                                                                                   tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    killed = _start("write", small_data, cache)
    killed_files = _files(cache)
    live = _start("write", small_data, cache)  # a second process writing the same entry, still at it
    try:
        live_files = sorted(set(_files(cache)) - set(killed_files))
        assert len(killed_files) == len(live_files) == 1 and killed_files[0].endswith(".tmp")
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)  # reaped: a zombie would still count as a live writer
        assert _files(cache) == sorted(killed_files + live_files)  # SIGKILL: the litter of issue 16
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, "-c", "import sys; from convnext_report.data import cache_root; "
                        "cache_root(sys.argv[1])", str(cache)], env=env, check=True, timeout=120)
        assert _files(cache) == live_files  # the dead writer's file is gone, the live writer's kept
        assert live.poll() is None
        live.send_signal(signal.SIGTERM)  # the live writer removes its own temporary file on its way out
        live.communicate(timeout=30)
        assert live.returncode == 143 and _files(cache) == []
    finally:
        killed.kill()
        live.kill()
