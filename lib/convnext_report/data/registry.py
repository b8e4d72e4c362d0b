"""The datasets the book uses, as data: one :class:`DatasetSpec` per name (where its parquet shards live,
their columns and split names, sizes and input statistics), so nothing else holds an if-chain on names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

__all__ = ["DATASETS", "DatasetSpec", "IMAGENET_MEAN", "IMAGENET_STD", "get_dataset_spec"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and how to read it."""

    name: str  #: registry key, e.g. "cifar10"
    hub_id: str  #: Hugging Face hub id, e.g. "uoft-cs/cifar10"
    local_subdir: str  #: folder under the data root holding ``<split>-*.parquet``; its last part: the hub's folder
    image_column: str  #: column with the encoded image (``struct<bytes, path>``)
    label_column: str  #: column with the ``ClassLabel``
    splits: Mapping[str, str]  #: "train"/"test" -> split name in the files and on the hub
    num_classes: int
    per_class: Mapping[str, int]  #: images per class of each split ("train", "test"), complete copies
    native_size: int  #: side of the decoded images; sources of another size are resized to it
    mean: tuple[float, float, float]  #: per-channel mean of images in [0, 1]
    std: tuple[float, float, float]
    description: str
    words_file: str | None = None  #: wnid -> words table under the data root (Tiny-ImageNet)

    def split_name(self, split: str) -> str:
        """The file/hub split name for ``"train"`` or ``"test"`` (the split a run reports)."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r} for {self.name}; use one of {sorted(self.splits)}")
        return self.splits[split]


_TINY_IMAGENET_32 = DatasetSpec(
    name="tiny-imagenet-32",
    hub_id="zh-plus/tiny-imagenet",
    local_subdir="tiny-imagenet-32/data",
    image_column="image",
    label_column="label",
    splits=MappingProxyType({"train": "train", "test": "valid"}),
    num_classes=200,
    per_class=MappingProxyType({"train": 500, "test": 50}),
    native_size=32,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description=(
        "Tiny-ImageNet-200 at 32x32 px: 100,000 training images (500 per class) and 10,000 "
        "test images (50 per class: the published validation split, \"valid\") of 200 ImageNet "
        "classes. Local copy: the original JPEGs downsampled to 32 px; from the hub "
        "(zh-plus/tiny-imagenet, 64 px) the images are resized to 32 px (PIL bicubic, "
        "antialiased) when decoded."
    ),
    words_file="tiny-imagenet-32/words.txt",
)

_SPECS = (
    _TINY_IMAGENET_32,
    replace(_TINY_IMAGENET_32, name="tiny-imagenet", local_subdir="tiny-imagenet/data", native_size=64, description=(
        "Tiny-ImageNet-200 at its native 64x64 px (hub zh-plus/tiny-imagenet): 100,000 "
        "training and 10,000 test images (the published validation split) of 200 ImageNet classes.")),
    DatasetSpec(
        name="cifar10",
        hub_id="uoft-cs/cifar10",
        local_subdir="cifar10-jpeg/plain_text",
        image_column="img",
        label_column="label",
        splits=MappingProxyType({"train": "train", "test": "test"}),
        num_classes=10,
        per_class=MappingProxyType({"train": 5000, "test": 1000}),
        native_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        description=(
            "CIFAR-10: 50,000 training and 10,000 test images, 32x32 px, 10 classes. The local "
            "copy holds the publisher's JPEG re-encoding; the hub twin is uoft-cs/cifar10 (PNG)."
        ),
    ),
    DatasetSpec(
        name="cifar100",
        hub_id="uoft-cs/cifar100",
        local_subdir="cifar100/cifar100",
        image_column="img",
        label_column="fine_label",
        splits=MappingProxyType({"train": "train", "test": "test"}),
        num_classes=100,
        per_class=MappingProxyType({"train": 500, "test": 100}),
        native_size=32,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        description=(
            "CIFAR-100: 50,000 training and 10,000 test images, 32x32 px, 100 fine classes "
            "(hub uoft-cs/cifar100, label column fine_label)."
        ),
    ),
)

#: name -> spec, read-only
DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({s.name: s for s in _SPECS})


def get_dataset_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The spec registered as ``name`` (a spec passes through)."""
    if isinstance(name, DatasetSpec):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        ) from None
