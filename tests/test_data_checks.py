"""Nothing read from the data or the cache is trusted: labels, counts and cache checksums."""

from __future__ import annotations

import warnings
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from convnext_report.data import DataError, load_split
from convnext_report.data.load import ImageTensors
from test_data_decode import _real_rows, _write_cifar_folder


def _with_labels(table: pa.Table, labels: list[int | None]) -> pa.Table:
    """``table`` with its labels replaced, keeping the hub schema (ClassLabel metadata)."""
    i = table.schema.get_field_index("label")
    return table.set_column(i, table.schema.field("label"), pa.array(labels, table.schema.field("label").type))


@pytest.mark.parametrize("bad,says", [(10, "is 10"), (-1, "is -1"), (None, "is missing")])
def test_label_outside_the_classes_names_file_row_and_value(tmp_path, data_root, bad, says) -> None:
    table = _real_rows(data_root, 8)
    labels = table.column("label").to_pylist()
    labels[5] = bad
    path = _write_cifar_folder(tmp_path / "data", _with_labels(table, labels))
    cache = tmp_path / "cache"
    for subset in ({}, {"per_class": 1}):  # checked when the split is loaded, before any row selection
        with pytest.raises(ValueError) as err:
            load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=cache, **subset)
        msg = str(err.value)
        assert f"row 5 of {path}" in msg and says in msg and "0..9" in msg and "10 classes" in msg, msg
    assert not [p for p in cache.rglob("*") if p.is_file() and "decoded" in p.parts]


def test_images_and_labels_must_agree() -> None:
    with pytest.raises(ValueError, match="3 images .* but 4 labels"):
        ImageTensors(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), ["a"],
                     dataset="cifar10", split="test", source="here")


def _swap_tensor(path: Path, change) -> None:
    """Replace the tensor in cache file ``path`` (alone or under "labels") by ``change(tensor)``."""
    obj = torch.load(path, weights_only=True)
    if isinstance(obj, dict):
        obj["labels"] = change(obj["labels"])
    else:
        obj = change(obj)
    torch.save(obj, path)


def _zero_middle(path: Path) -> None:
    """Zero 4 KB in the middle of the file: still loadable, wrong values."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


DAMAGES = {
    "images replaced by another tensor": ("images", lambda p: _swap_tensor(p, lambda t: t.flip(0).contiguous())),
    "images with fewer rows": ("images", lambda p: _swap_tensor(p, lambda t: t[:5].clone())),
    "images zeroed inside": ("images", _zero_middle),
    "images truncated": ("images", lambda p: p.write_bytes(p.read_bytes()[:1000])),
    "labels replaced by other labels": ("labels", lambda p: _swap_tensor(p, lambda t: (t + 1) % 10)),
    "labels out of range": ("labels", lambda p: _swap_tensor(p, lambda t: t + 100)),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_cache_entry_warns_decodes_again_and_is_rewritten(tmp_path, data_root, damage) -> None:
    _write_cifar_folder(tmp_path / "data", _real_rows(data_root, 8))
    load = lambda: load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")  # noqa: E731
    first = load()
    which, hurt = DAMAGES[damage]
    entries = sorted(p for p in (tmp_path / "cache" / "decoded").rglob("*.pt"))
    path = next(p for p in entries if p.name.endswith("-labels.pt") == (which == "labels"))
    hurt(path)
    with pytest.warns(UserWarning, match=f"cache file {path}"):
        again = load()
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry was rewritten: a third load trusts it again
        third = load()
    assert third.from_cache and torch.equal(third.images, first.images)
    assert torch.equal(third.labels, first.labels)


def _without(table: pa.Table, column: str) -> pa.Table:
    return table.drop_columns([column])


@pytest.mark.parametrize("damage, says", [
    (lambda t: _without(t, "label"), "has no column 'label' (it has img): expected 'label' with integer class ids"),
    (lambda t: _without(t, "img"), "has no column 'img' (it has label): expected 'img' with encoded images"),
    (lambda t: t.set_column(0, "img", pa.array(["x"] * len(t))), "column 'img' holds string: expected encoded images"),
    (lambda t: t.set_column(1, "label", pa.array(["cat"] * len(t))), "column 'label' holds string: expected integer"),
    (lambda t: t.slice(0, 0), "has no rows: expected cifar10 images with labels"),
], ids=["no label column", "no image column", "images as text", "labels as text", "no rows"])
def test_a_shard_without_what_the_split_needs_names_file_column_and_expectation(tmp_path, data_root, damage,
                                                                                  says) -> None:
    path = _write_cifar_folder(tmp_path / "data", damage(_real_rows(data_root, 8)))
    with pytest.raises(DataError) as err:
        load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert message.startswith(f"cifar10 test split: {path}") and says in message, message
    assert "uoft-cs/cifar10's parquet files; re-download or replace it" in message


def test_a_file_that_is_not_parquet_is_named(tmp_path) -> None:
    path = tmp_path / "data" / "cifar10-jpeg" / "plain_text" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    path.write_text("not parquet")
    with pytest.raises(DataError, match=f"{path} cannot be read as parquet .*re-download or replace it"):
        load_split("cifar10", "test", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
