"""Dataset registry and RandAugment spec parsing."""

from __future__ import annotations

import pytest

from convnext_report.data import DATASETS, DatasetSpec, get_dataset_spec, load_split, parse_randaugment


def test_registry_names_and_columns():
    assert set(DATASETS) == {"tiny-imagenet-32", "tiny-imagenet", "cifar10", "cifar100"}
    tiny, c10, c100 = DATASETS["tiny-imagenet-32"], DATASETS["cifar10"], DATASETS["cifar100"]
    assert (tiny.hub_id, tiny.image_column, tiny.label_column) == ("zh-plus/tiny-imagenet", "image", "label")
    assert dict(tiny.splits) == {"train": "train", "test": "valid"} and tiny.native_size == 32
    assert "resized to 32" in tiny.description
    assert (c10.hub_id, c10.image_column, c10.label_column) == ("uoft-cs/cifar10", "img", "label")
    assert c10.splits["test"] == "test"
    assert (c100.hub_id, c100.label_column, c100.num_classes) == ("uoft-cs/cifar100", "fine_label", 100)
    assert DATASETS["tiny-imagenet"].native_size == 64
    for spec in DATASETS.values():
        assert isinstance(spec, DatasetSpec) and len(spec.mean) == len(spec.std) == 3


def test_get_dataset_spec_unknown_lists_names():
    assert get_dataset_spec("cifar10") is DATASETS["cifar10"]
    with pytest.raises(ValueError, match="imagenet-1k") as err:
        get_dataset_spec("imagenet-1k")
    for name in DATASETS:
        assert name in str(err.value)


def test_splits_are_train_and_test_and_val_is_refused():
    for spec in DATASETS.values():
        assert set(spec.splits) == {"train", "test"}
    with pytest.raises(ValueError, match=r"unknown split 'val' for cifar10; use one of \['test', 'train'\]"):
        DATASETS["cifar10"].split_name("val")
    with pytest.raises(ValueError, match="use one of"):
        load_split("cifar10", "val")


@pytest.mark.parametrize(
    "text, expected", [("n2m9", (2, 9)), ("m9n2", (2, 9)), ("rand-m7-n3", (3, 7)), ("N1M0", (1, 0)), ("m10", (2, 10))]
)
def test_parse_randaugment(text, expected):
    assert parse_randaugment(text) == expected


@pytest.mark.parametrize("text", ["", "n2", "n2m9x", "m31", "rand-q"])
def test_parse_randaugment_rejects(text):
    with pytest.raises(ValueError):
        parse_randaugment(text)


def test_split_sizes_per_class_match_the_real_data(data_root) -> None:
    """``DatasetSpec.per_class`` is the one place that knows split sizes: it matches the local parquet copies."""
    import pyarrow.parquet as pq

    from convnext_report.data.registry import DATASETS

    for spec in DATASETS.values():
        folder = data_root / spec.local_subdir
        if not folder.is_dir():
            continue
        for split, per_class in spec.per_class.items():
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob(f"{spec.split_name(split)}-*.parquet"))
            assert rows == per_class * spec.num_classes, (spec.name, split, rows)
