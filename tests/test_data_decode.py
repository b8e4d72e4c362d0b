"""Decoding to uint8 tensors, the checksum-keyed cache, corrupt images, atomic writes."""

from __future__ import annotations

import io
import json
import os
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


def _pil_reference(blob: bytes, size: int = 32) -> torch.Tensor:
    """What PIL alone makes of an image: RGB, resized (bicubic) to ``size``, as (3, size, size)."""
    image = Image.open(io.BytesIO(blob)).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def test_decode_grayscale_and_resize(tmp_path, data_root):
    table = _real_rows(data_root, 5)
    blobs = _blobs(table)
    gray, big, big_jpeg = io.BytesIO(), io.BytesIO(), io.BytesIO()
    Image.open(io.BytesIO(blobs[1])).convert("L").save(gray, format="JPEG")
    Image.open(io.BytesIO(blobs[2])).resize((64, 64)).save(big, format="PNG")
    Image.open(io.BytesIO(blobs[4])).resize((48, 48)).save(big_jpeg, format="JPEG")
    blobs[1], blobs[2], blobs[4] = gray.getvalue(), big.getvalue(), big_jpeg.getvalue()
    _write_cifar_folder(tmp_path / "data", _with_images(table, blobs))
    out = load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert out.images.shape == (5, 3, 32, 32) and out.images.dtype == torch.uint8
    assert out.labels.dtype == torch.int64 and len(out.class_names) == 10
    g = out.images[1].int()
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])  # grayscale -> RGB copies
    for row in range(5):  # JPEGs through libjpeg-turbo (torchvision), a PNG through PIL: PIL's pixels
        assert torch.equal(out.images[row], _pil_reference(blobs[row])), row


def test_decode_names_the_first_corrupt_row(data_root):
    blobs = _blobs(_real_rows(data_root, 600))
    assert decode_images(blobs, 32).shape == (600, 3, 32, 32)
    blobs[300], blobs[400] = b"garbage", None
    with pytest.raises(CorruptImageError) as err:
        decode_images(blobs, 32)
    assert err.value.row == 300 and str(err.value).startswith("row 300: ")
    with pytest.raises(CorruptImageError, match="^row 99: ValueError: no image bytes$"):
        decode_images(blobs[301:], 32)  # row 400 of the full list


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


def test_remove_orphans_only_takes_dead_writers_files_of_this_host(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = atomic._HOST
    names = {
        f".entry.pt.{int(dead.stdout)}@{host}.abc123.tmp": False,  # its writer is gone: removed
        f".entry.pt.{os.getpid()}@{host}.abc123.tmp": True,  # a live writer (this process)
        f".entry.pt.{int(dead.stdout)}@other-{host}.abc123.tmp": True,  # written on another host
        ".entry.pt.abc123.tmp": True,  # no writer in its name (older versions): nobody can tell
    }
    for name in names:
        (tmp_path / "sub" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / name).write_bytes(b"x")
    assert atomic.remove_orphans(tmp_path) == [tmp_path / "sub" / next(iter(names))]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == sorted(n for n, kept in names.items() if kept)
