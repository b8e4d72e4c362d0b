"""Readable class names for figures."""

from __future__ import annotations

from convnext_report.data import DATASETS, class_names
from convnext_report.data.classnames import read_words, readable_names


def test_tiny_imagenet_words(data_root):
    names = class_names("tiny-imagenet-32", data_root)
    assert len(names) == 200 and names[0] == "goldfish" and names[2] == "bullfrog"
    wnids = class_names("tiny-imagenet-32", data_root, readable=False)
    assert wnids[0] == "n01443537" and wnids == sorted(wnids)
    words = read_words(data_root / "tiny-imagenet-32" / "words.txt")
    assert [words[w] for w in wnids] == names


def test_tiny_imagenet_words_without_words_file(data_root):
    """Hub source (no data root): timm's ImageNet synset table supplies the same first synonyms."""
    wnids = class_names("tiny-imagenet-32", data_root, readable=False)
    assert readable_names(DATASETS["tiny-imagenet-32"], wnids, None) == class_names("tiny-imagenet-32", data_root)


def test_cifar10_names_from_classlabel(data_root):
    assert class_names("cifar10", data_root) == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]
