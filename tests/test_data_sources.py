"""Data roots, missing folders, and the hub path (the same shards, from the Hugging Face cache) up to the
network call."""

from __future__ import annotations

import io

import datasets
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from convnext_report.data import (
    DATA_ENV,
    DatasetUnavailableError,
    load_split,
    resolve_data_root,
    split_source,
)


def test_resolve_data_root_precedence(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv(DATA_ENV, str(data_root))
    assert resolve_data_root() == data_root
    assert resolve_data_root(tmp_path) == tmp_path.resolve()
    assert resolve_data_root("hub") is None
    monkeypatch.delenv(DATA_ENV)
    assert resolve_data_root() is None


def test_missing_data_folder_is_clear(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        load_split("cifar10", "test", data_dir=missing)
    msg = str(err.value)
    assert str(missing) in msg and DATA_ENV in msg and "data_dir" in msg
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=DATA_ENV):
        load_split("cifar10", "test")


def test_dataset_missing_under_root_is_clear(data_root):
    # Tiny-ImageNet at its native 64 px is the one registered data set that ../shared/data lacks
    assert not (data_root / "tiny-imagenet").exists()
    with pytest.raises(FileNotFoundError) as err:
        split_source("tiny-imagenet", "train", data_root)
    msg = str(err.value)
    assert "tiny-imagenet" in msg and DATA_ENV in msg and "hub" in msg


def test_real_cifar100_is_complete(data_root):
    assert [sum(split_source("cifar100", s, data_root).row_counts()) for s in ("train", "test")] == [50_000, 10_000]
    test = load_split("cifar100", "test", data_dir=data_root)
    assert test.images.shape == (10_000, 3, 32, 32) and test.num_classes == 100
    assert torch.bincount(test.labels).tolist() == [100] * 100
    assert test.class_names[0] == "apple" and test.class_names[-1] == "worm"


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_split("mnist", "train")


def _fake_hub_split(data_root, size: int, label_column: str, image_column: str) -> datasets.Dataset:
    """Six real CIFAR-10 images (re-encoded as PNG at ``size`` px) in a hub-shaped Dataset."""
    table = pq.read_table(data_root / "cifar10-jpeg" / "plain_text" / "test-00000-of-00001.parquet").slice(0, 6)
    pngs = []
    for blob in table.column("img").combine_chunks().field("bytes").to_pylist():
        buf = io.BytesIO()
        Image.open(io.BytesIO(blob)).convert("RGB").resize((size, size)).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    features = datasets.Features(
        {image_column: datasets.Image(), label_column: datasets.ClassLabel(names=[f"c{i}" for i in range(100)])}
    )
    return datasets.Dataset.from_dict({image_column: pngs, label_column: [0, 1, 2, 0, 1, 2]}, features=features)


@pytest.mark.parametrize(
    "name, split, hub_id, pattern, size, image_column, label_column",
    [
        ("cifar100", "test", "uoft-cs/cifar100", "cifar100/test-*.parquet", 32, "img", "fine_label"),
        ("cifar10", "train", "uoft-cs/cifar10", "plain_text/train-*.parquet", 32, "img", "label"),
        ("tiny-imagenet-32", "test", "zh-plus/tiny-imagenet", "data/valid-*.parquet", 64, "image", "label"),
    ],
)
def test_hub_path_reads_the_hubs_shards(
    monkeypatch, tmp_path, data_root, name, split, hub_id, pattern, size, image_column, label_column
):
    import huggingface_hub

    calls = []

    def snapshot_download(repo_id, *, repo_type, allow_patterns):
        calls.append((repo_id, repo_type, allow_patterns))
        shard = tmp_path / "snapshot" / pattern.replace("*", "00000-of-00001")
        shard.parent.mkdir(parents=True, exist_ok=True)
        _fake_hub_split(data_root, size, label_column, image_column).to_parquet(shard)
        return str(tmp_path / "snapshot")

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    out = load_split(name, split, cache_dir=tmp_path)
    assert calls == [(hub_id, "dataset", [pattern])]
    assert out.source == f"hub:{hub_id}[{pattern.split('/')[1].split('-')[0]}]"
    assert out.images.shape == (6, 3, 32, 32) and out.images.dtype == torch.uint8  # 64 px hub images -> 32
    assert out.labels.tolist() == [0, 1, 2, 0, 1, 2] and not out.from_cache and out.class_names[:2] == ["c0", "c1"]
    again = load_split(name, split, cache_dir=tmp_path)
    assert again.from_cache and torch.equal(again.images, out.images)


def test_hub_offline_without_local_data_is_clear(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # nothing cached
    with pytest.raises(DatasetUnavailableError) as err:
        load_split("cifar100", "test", cache_dir=tmp_path)
    msg = str(err.value)
    assert "uoft-cs/cifar100" in msg and DATA_ENV in msg and "online" in msg and "offline" in msg


def test_local_parquet_needs_no_datasets_package(monkeypatch, tmp_path, data_root):
    """The GPU machine has no ``datasets``: local shards are read with pyarrow alone."""
    import sys

    from convnext_report.data import class_names

    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    with pytest.raises(ImportError):
        import datasets as _  # noqa: F401
    split = load_split("cifar100", "test", data_dir=data_root, per_class=2, cache_dir=tmp_path)
    assert split.images.shape == (200, 3, 32, 32) and not split.from_cache
    assert split.class_names[:2] == ["apple", "aquarium_fish"]  # ClassLabel names from the schema metadata
    assert sorted(torch.bincount(split.labels).tolist()) == [2] * 100
    assert class_names("tiny-imagenet-32", data_root, readable=False)[0] == "n01443537"
    assert sum(split_source("cifar10", "train", data_root).row_counts()) == 50_000
