"""``load_split``: one split of a registered dataset as uint8 tensors, decoded once and cached."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from ..atomic import torch_save_atomic
from .classnames import readable_names
from .decode import (
    CorruptImageError,
    cache_key,
    cache_root,
    decode_images,
    file_sha256,
)
from .registry import get_dataset_spec
from .sources import SplitSource, split_source
from .subsets import select_rows

_FORMAT = 1  # bump when the decoded layout changes


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

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


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
    """Load ``split`` ("train"/"val") of ``dataset`` as uint8 tensors.

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
    ds = None
    if source.is_hub:
        ds = source.load()
        key = cache_key(_FORMAT, spec.name, split, spec.native_size, spec.hub_id, ds._fingerprint)
    else:
        key = cache_key(_FORMAT, spec.name, split, spec.native_size, *(file_sha256(f, root) for f in source.files))
    folder = root / "decoded" / spec.name
    meta_path = folder / f"{split}-{key}-labels.pt"
    meta = _load(meta_path)
    if meta is None:
        ds = ds if ds is not None else source.load(root / "hf-datasets")
        meta = {
            "labels": torch.tensor(ds.data.column(spec.label_column).to_numpy(), dtype=torch.int64),
            "label_names": list(ds.features[spec.label_column].names),
        }
    labels: torch.Tensor = meta["labels"]
    rows = select_rows(labels, per_class=per_class, max_classes=max_classes, seed=seed)

    images, from_cache = _load(folder / f"{split}-{key}.pt"), True
    if images is not None:
        images = images if rows is None else images[rows]
    elif rows is not None and len(rows) <= len(labels) // 2:  # small subset: decode only its rows
        path = folder / f"{split}-{key}-rows{cache_key(rows.numpy().tobytes().hex())}.pt"
        images = _load(path)
        if images is None:
            ds = ds if ds is not None else source.load(root / "hf-datasets")
            images, from_cache = _decode(source, ds, rows), False
            torch_save_atomic(images, path)
    else:
        ds = ds if ds is not None else source.load(root / "hf-datasets")
        images, from_cache = _decode(source, ds, None), False
        torch_save_atomic(images, folder / f"{split}-{key}.pt")
        images = images if rows is None else images[rows]
    if not meta_path.exists():
        torch_save_atomic(meta, meta_path)

    names = readable_names(spec, meta["label_names"], source.root)
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


def _load(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # unreadable entry: decode again and overwrite it
        warnings.warn(f"ignoring unreadable cache file {path}: {err}", stacklevel=3)
        return None


def _decode(source: SplitSource, ds, rows: torch.Tensor | None) -> torch.Tensor:
    spec = source.spec
    column = ds.data.column(spec.image_column)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    blobs = column.field("bytes")
    if rows is not None:
        blobs = blobs.take(pa.array(rows.numpy()))
    try:
        return decode_images(blobs.to_pylist(), spec.native_size)
    except CorruptImageError as err:
        row = int(rows[err.row]) if rows is not None else err.row
        file, file_row = source.file_of_row(row)
        fix = (
            f"re-download or replace {file} (compare it with SHA256SUMS if you have one)"
            if not source.is_hub
            else f"delete {spec.hub_id} from the Hugging Face cache and download it again"
        )
        raise ValueError(
            f"{spec.name} {source.split} split ({source.split_name}): the image at row {row} "
            f"(row {file_row} of {file}) cannot be decoded ({err.reason}). The data is corrupt: "
            f"{fix}. Nothing was cached."
        ) from err


def dataset_summary(dataset: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Counts per split, image size and source of a dataset, without decoding images."""
    spec = get_dataset_spec(dataset)
    sources = {s: split_source(spec, s, data_dir) for s in spec.splits}
    if any(s.is_hub for s in sources.values()):
        import datasets

        info = datasets.load_dataset_builder(spec.hub_id).info
        counts = {s: int(info.splits[src.split_name].num_examples) for s, src in sources.items()}
        origin = f"hub:{spec.hub_id}"
    else:
        counts = {s: sum(src.row_counts()) for s, src in sources.items()}
        origin = str(sources["train"].files[0].parent)
    return {
        "dataset": spec.name,
        "description": spec.description,
        "source": origin,
        "hub_id": spec.hub_id,
        "num_classes": spec.num_classes,
        "image_size": spec.native_size,
        "splits": counts,
        "split_names": dict(spec.splits),
    }
