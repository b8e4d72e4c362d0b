"""Human-readable class names for figures.

CIFAR names come from the ``ClassLabel`` feature. Tiny-ImageNet labels are WordNet ids; they
are mapped to their first synonym (``n01443537`` -> ``goldfish``) with ``words.txt`` from the
data root, else timm's ImageNet synset table, else left as ids.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from timm.data import ImageNetInfo

from .registry import DatasetSpec, get_dataset_spec
from .sources import resolve_data_root, split_source

__all__ = ["class_names", "read_words", "readable_names"]


def read_words(path: str | os.PathLike) -> dict[str, str]:
    """``wnid -> first synonym`` from a tab-separated ``words.txt``."""
    words = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            wnid, names = line.split("\t", 1)
            words[wnid.strip()] = names.split(",")[0].strip()
    return words


def _timm_words(wnids: Sequence[str]) -> dict[str, str]:
    try:
        info = ImageNetInfo("imagenet-22k")
        return {w: info.label_name_to_description(w).split(",")[0].strip() for w in wnids}
    except Exception:  # a wnid outside timm's table
        return {}


def readable_names(
    spec: DatasetSpec, label_names: Sequence[str], data_root: Path | None = None
) -> list[str]:
    """Map raw ``ClassLabel`` names to readable ones (WordNet ids -> words)."""
    if spec.words_file is None:
        return list(label_names)
    words: dict[str, str] = {}
    if data_root is not None and (data_root / spec.words_file).is_file():
        words = read_words(data_root / spec.words_file)
    if not all(w in words for w in label_names):
        words = {**_timm_words(label_names), **words}
    return [words.get(w, w) for w in label_names]


def class_names(
    dataset: str | DatasetSpec, data_dir: str | os.PathLike | None = None, *, readable: bool = True
) -> list[str]:
    """Class names in label order (``readable=False``: the raw ``ClassLabel`` names, e.g. wnids)."""
    spec = get_dataset_spec(dataset)
    source = split_source(spec, "train", data_dir)
    names = source.label_names() or [str(i) for i in range(spec.num_classes)]
    return readable_names(spec, names, resolve_data_root(data_dir)) if readable else names
