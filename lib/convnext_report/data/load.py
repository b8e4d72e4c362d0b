"""``load_split``: one split of a registered dataset as uint8 tensors, decoded once and cached.

Nothing read is trusted: labels must be integers in ``0..num_classes-1`` (else an error naming
the file, row and value), and every cache entry is a tensor plus a JSON record of its sha256,
shape and dtype. An entry that does not match its record (replaced, truncated, zeroed) or the
split (row count) is reported with a warning, decoded again and overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..interrupts import sigterm_raises
from .classnames import readable_names
from .cache import cache_key, cache_root, file_sha256, load_entry, save_entry
from .decode import CorruptImageError, decode_images
from .registry import get_dataset_spec
from .sources import DataError, SplitSource, split_source
from .subsets import select_rows

__all__ = ["ImageTensors", "load_split"]

_FORMAT = 2  # bump when the decoded layout changes (2: a checksum record beside every entry)
_FIX = "re-download or replace the file (compare it with SHA256SUMS if you have one)"


@dataclass
class ImageTensors:
    """A decoded split: ``images`` uint8 (N, 3, H, W) and ``labels`` int64 (N,), both on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    dataset: str
    split: str
    source: str  #: parquet folder or ``hub:<id>[<split>]``
    from_cache: bool = False  #: images came from the decoded-tensor cache
    seconds: float = 0.0  #: wall time of ``load_split``
    rows: torch.Tensor | None = field(default=None, repr=False)  #: kept rows of the full split

    def __post_init__(self) -> None:
        n_images, n_labels = int(self.images.shape[0]), int(self.labels.shape[0])
        if self.images.ndim != 4 or n_images != n_labels:
            raise ValueError(
                f"{self.dataset} {self.split} split from {self.source}: {n_images} images "
                f"(shape {tuple(self.images.shape)}) but {n_labels} labels: every image needs exactly one label"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, rows: torch.Tensor, split: str | None = None) -> "ImageTensors":
        """The images at ``rows`` (positions in this object), named ``split`` (default: the same)."""
        full_rows = rows if self.rows is None else self.rows[rows]
        return dataclasses.replace(self, images=self.images[rows], labels=self.labels[rows],
                                   split=split or self.split, rows=full_rows)


def load_split(
    dataset: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    train_per_class: int | None = None,
    per_class: int | None = None,
    max_classes: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> ImageTensors:
    """Load ``split`` ("train"/"test") of ``dataset`` as uint8 tensors.

    ``data_dir``: local parquet root; ``None``: ``$CONVNEXT_REPORT_DATA``, else the hub.
    ``max_classes=K`` keeps classes 0..K-1; ``per_class`` (or ``train_per_class``, which only
    applies to the train split) keeps a balanced subset chosen by ``seed``. The full split is
    decoded once and cached under ``cache_dir`` / ``$CONVNEXT_REPORT_CACHE``; a small subset
    of an uncached split decodes (and caches) only its rows.
    """
    start = time.perf_counter()
    spec = get_dataset_spec(dataset)
    spec.split_name(split)
    if split == "train" and train_per_class is not None:
        if per_class is not None and per_class != train_per_class:
            raise ValueError(f"train_per_class={train_per_class} and per_class={per_class} disagree")
        per_class = train_per_class
    if max_classes is not None and not 1 <= max_classes <= spec.num_classes:
        raise ValueError(f"max_classes must be in 1..{spec.num_classes} for {spec.name}, got {max_classes}")
    source = split_source(spec, split, data_dir)
    root = cache_root(cache_dir)
    key = cache_key(_FORMAT, spec.name, split, spec.native_size, *(file_sha256(f, root) for f in source.files))
    folder = root / "decoded" / spec.name
    labels_path = folder / f"{split}-{key}-labels.pt"
    num_rows = sum(source.row_counts())
    table = None
    cached = _cached_labels(labels_path, num_rows, spec.num_classes)
    if cached is None:
        table = source.load()
        labels, label_names = _source_labels(source, table)
    else:
        labels, label_names = cached
    rows = select_rows(labels, per_class=per_class, max_classes=max_classes, seed=seed)

    full_path = folder / f"{split}-{key}.pt"
    images, from_cache = _cached_images(full_path, num_rows, spec.native_size), True
    with sigterm_raises():  # SIGTERM while decoding or writing: the atomic writes remove their temp files
        if images is not None:
            images = images if rows is None else images[rows]
        elif rows is not None and len(rows) <= num_rows // 2:  # small subset: decode only its rows
            path = folder / f"{split}-{key}-rows{cache_key(rows.numpy().tobytes().hex())}.pt"
            images = _cached_images(path, len(rows), spec.native_size)
            if images is None:
                images, from_cache = _decode(source, table if table is not None else source.load(), rows), False
                save_entry(images, path, format=_FORMAT)
        else:
            images, from_cache = _decode(source, table if table is not None else source.load(), None), False
            save_entry(images, full_path, format=_FORMAT)
            images = images if rows is None else images[rows]
        if cached is None:
            save_entry(labels, labels_path, format=_FORMAT, label_names=label_names)

    names = readable_names(spec, label_names, source.root)
    return ImageTensors(
        images=images,
        labels=labels if rows is None else labels[rows],
        class_names=names[:max_classes] if max_classes else names,
        dataset=spec.name,
        split=split,
        source=source.describe(),
        from_cache=from_cache,
        seconds=time.perf_counter() - start,
        rows=rows,
    )


def _cached_images(path: Path, num_rows: int, size: int) -> torch.Tensor | None:
    """The cached uint8 images (num_rows, 3, size, size) at ``path``, or ``None`` (see :func:`.cache.load_entry`)."""
    entry = load_entry(path, (num_rows, 3, size, size), torch.uint8)
    return None if entry is None else entry[0]


def _cached_labels(path: Path, num_rows: int, num_classes: int) -> tuple[torch.Tensor, list[str]] | None:
    """Cached (labels, class names) of a split, or ``None`` when absent or not plausible (warns)."""
    entry = load_entry(path, (num_rows,), torch.int64)
    if entry is None:
        return None
    labels, names = entry[0], entry[1].get("label_names")
    if _first_bad_label(labels, num_classes) is None and isinstance(names, list) and all(isinstance(n, str) for n in names):
        return labels, names
    warnings.warn(f"ignoring cache file {path}: its labels or class names are invalid; reading the split again",
                  stacklevel=2)
    return None


def _source_labels(source: SplitSource, table: pa.Table) -> tuple[torch.Tensor, list[str]]:
    """Labels (int64) and raw class names of a split; missing or out-of-range labels are errors."""
    spec = source.spec
    column = table.column(spec.label_column)
    if not pa.types.is_integer(column.type):
        raise _bad_label(source, 0, f"of type {column.type}", "integer class ids")
    if column.null_count:
        row = int(pc.index(pc.is_null(column), True).as_py())
        raise _bad_label(source, row, "missing", f"a class id in 0..{spec.num_classes - 1}")
    labels = torch.from_numpy(column.to_numpy().astype(np.int64))
    row = _first_bad_label(labels, spec.num_classes)
    if row is not None:
        raise _bad_label(source, row, str(int(labels[row])), f"a class id in 0..{spec.num_classes - 1}")
    return labels, list(source.label_names() or map(str, range(spec.num_classes)))


def _first_bad_label(labels: torch.Tensor, num_classes: int) -> int | None:
    """Index of the first label outside ``0..num_classes-1``, or ``None``."""
    bad = torch.nonzero((labels < 0) | (labels >= num_classes))
    return int(bad[0, 0]) if len(bad) else None


def _bad_label(source: SplitSource, row: int, value: str, expected: str) -> DataError:
    spec = source.spec
    file, file_row = source.file_of_row(row)
    return DataError(
        f"{spec.name} {source.split} split ({source.split_name}): the label (column {spec.label_column!r}) "
        f"at row {row} (row {file_row} of {file}) is {value}; expected {expected} ({spec.name} has "
        f"{spec.num_classes} classes). The data is corrupt or not {spec.name}: {_FIX}. "
        "Nothing was cached."
    )


def _decode(source: SplitSource, table: pa.Table, rows: torch.Tensor | None) -> torch.Tensor:
    spec = source.spec
    column = table.column(spec.image_column)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    blobs = column.field("bytes")
    if rows is not None:
        blobs = blobs.take(pa.array(rows.numpy()))
    try:
        return decode_images(blobs.to_pylist(), spec.native_size)
    except CorruptImageError as err:
        row = int(rows[err.row]) if rows is not None else err.row
        file, file_row = source.file_of_row(row)
        raise DataError(
            f"{spec.name} {source.split} split ({source.split_name}): the image at row {row} "
            f"(row {file_row} of {file}) cannot be decoded ({err.reason}). The data is corrupt: "
            f"{_FIX}. Nothing was cached."
        ) from err
