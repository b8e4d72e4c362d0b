"""Decoding to uint8 tensors, the checksum-keyed cache, corrupt images, atomic writes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from convnext_report.data import cache as cache_mod
from convnext_report.data import decode as decode_mod
from convnext_report.data import load_split
from convnext_report import atomic
from convnext_report.data.cache import file_sha256
from convnext_report.data.decode import CorruptImageError, decode_images

CIFAR_TEST = Path("cifar10-jpeg") / "plain_text" / "test-00000-of-00001.parquet"


def _real_rows(data_root: Path, n: int) -> pa.Table:
    return pq.read_table(data_root / CIFAR_TEST).slice(0, n)


def _with_images(table: pa.Table, blobs: list[bytes]) -> pa.Table:
    """``table`` with its image bytes replaced, keeping the hub schema (ClassLabel metadata)."""
    column = table.column("img").combine_chunks()
    images = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), column.field("path")], fields=list(column.type))
    return table.set_column(table.schema.get_field_index("img"), table.schema.field("img"), images)


def _write_cifar_folder(root: Path, table: pa.Table) -> Path:
    path = root / CIFAR_TEST
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _blobs(table: pa.Table) -> list[bytes]:
    return table.column("img").combine_chunks().field("bytes").to_pylist()


def _decoded_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file() and "decoded" in p.parts]


def test_corrupt_image_names_file_and_row_and_caches_nothing(tmp_path, data_root):
    table = _real_rows(data_root, 8)
    blobs = _blobs(table)
    blobs[5] = b"\xff\xd8\xff\xe0 this is not a JPEG"
    path = _write_cifar_folder(tmp_path / "data", _with_images(table, blobs))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as err:
        load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=cache)
    msg = str(err.value)
    assert "cifar10 test split (test)" in msg and str(path) in msg and "row 5" in msg
    assert "re-download or replace" in msg
    assert _decoded_files(cache) == []
    assert not list(cache.rglob("*.tmp"))


def test_decode_grayscale_and_resize(tmp_path, data_root):
    table = _real_rows(data_root, 4)
    blobs = _blobs(table)
    gray, big = io.BytesIO(), io.BytesIO()
    Image.open(io.BytesIO(blobs[1])).convert("L").save(gray, format="JPEG")
    Image.open(io.BytesIO(blobs[2])).resize((64, 64)).save(big, format="PNG")
    blobs[1], blobs[2] = gray.getvalue(), big.getvalue()
    _write_cifar_folder(tmp_path / "data", _with_images(table, blobs))
    out = load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert out.images.shape == (4, 3, 32, 32) and out.images.dtype == torch.uint8
    assert out.labels.dtype == torch.int64 and len(out.class_names) == 10
    g = out.images[1].int()
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])  # grayscale -> RGB copies
    ref = torch.from_numpy(np.array(Image.open(io.BytesIO(blobs[0])).convert("RGB")))
    assert torch.equal(out.images[0], ref.permute(2, 0, 1))


def test_decode_pool_matches_serial_and_reports_row(monkeypatch, data_root):
    blobs = _blobs(_real_rows(data_root, 600))
    monkeypatch.setattr(decode_mod, "_POOL_MIN_IMAGES", 0)
    monkeypatch.setattr(decode_mod, "_CHUNK", 128)
    serial = decode_images(blobs, 32, workers=1)
    pooled = decode_images(blobs, 32, workers=2)
    assert torch.equal(serial, pooled) and serial.shape == (600, 3, 32, 32)
    blobs[300] = b"garbage"
    with pytest.raises(CorruptImageError) as err:
        decode_images(blobs, 32, workers=2)
    assert err.value.row == 300


def test_real_cifar10_test_second_load_from_cache(tmp_path, data_root):
    t0 = time.perf_counter()
    first = load_split("cifar10", "test", data_dir=data_root, cache_dir=tmp_path)
    t1 = time.perf_counter()
    second = load_split("cifar10", "test", data_dir=data_root, cache_dir=tmp_path)
    t2 = time.perf_counter()
    assert first.images.shape == (10_000, 3, 32, 32) and not first.from_cache
    assert second.from_cache and torch.equal(first.images, second.images)
    assert torch.equal(torch.bincount(second.labels), torch.full((10,), 1000))
    assert (t1 - t0) / (t2 - t1) >= 5


def test_checksum_cached_by_path_size_mtime(tmp_path, monkeypatch):
    f = tmp_path / "x.parquet"
    f.write_bytes(b"abc")
    digest = file_sha256(f, tmp_path / "cache")
    index = json.loads((tmp_path / "cache" / "checksums.json").read_text())
    assert index[str(f.resolve())]["sha256"] == digest
    monkeypatch.setattr(cache_mod.hashlib, "sha256", lambda: pytest.fail("checksum not cached"))
    assert file_sha256(f, tmp_path / "cache") == digest
    monkeypatch.undo()
    f.write_bytes(b"abcd")
    assert file_sha256(f, tmp_path / "cache") != digest


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "entry.pt"

    def broken_save(obj, path):
        Path(path).write_bytes(b"half a tensor")
        raise KeyboardInterrupt  # a killed run

    monkeypatch.setattr(atomic.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        atomic.torch_save_atomic(torch.zeros(3), target)
    assert list(tmp_path.iterdir()) == []


# a process that decodes 100k synthetic 256 px JPEGs through a 2-worker pool (minutes of work)
_DECODING_CHILD = """
import io
import numpy as np
from PIL import Image
from convnext_report.data import decode
buf = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, format="JPEG")
decode._POOL_MIN_IMAGES, decode._CHUNK = 0, 64
decode.decode_images([buf.getvalue()] * 100_000, 32, workers=2)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, ``None`` if it is gone."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    return state, int(ppid)


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [c for c in pids if (_stat(c) or ("Z", -1))[1] == pid and _alive(c)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_killing_a_decoding_process_leaves_no_workers(sig):
    child = subprocess.Popen([sys.executable, "-c", _DECODING_CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(workers) < 2:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the decode pool never started"
            time.sleep(0.05)
            workers = _children(child.pid)
        time.sleep(0.3)  # let them decode
        child.send_signal(sig)
        child.wait(timeout=30)  # a loaded CI machine: the point is that the workers go, not how fast
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if _alive(w)], f"decode workers outlived their parent ({sig.name})"
    finally:
        child.kill()
        for w in workers:  # only when the test failed: do not leave them running
            if _alive(w):
                os.kill(w, signal.SIGKILL)
