"""Balanced seeded subsets and first-K classes, on tensors and through load_split."""

from __future__ import annotations

import pytest
import torch

from convnext_report.data import balanced_subset, first_k_classes, load_split


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(1))]


def test_balanced_subset_exact_and_seeded(labels):
    rows = balanced_subset(labels, 7, seed=0)
    assert torch.equal(torch.bincount(labels[rows], minlength=10), torch.full((10,), 7))
    assert len(set(rows.tolist())) == 70 and torch.equal(rows, rows.sort().values)
    assert torch.equal(rows, balanced_subset(labels, 7, seed=0))
    assert not torch.equal(rows, balanced_subset(labels, 7, seed=1))


def test_balanced_subset_too_many(labels):
    with pytest.raises(ValueError, match="per_class <= 30"):
        balanced_subset(labels, 31)


def test_first_k_classes(labels):
    rows = first_k_classes(labels, 3)
    assert set(labels[rows].tolist()) == {0, 1, 2} and len(rows) == 90


def test_load_split_subsets_real_cifar(data_root):
    a = load_split("cifar10", "test", data_dir=data_root, per_class=5, max_classes=4, seed=3)
    assert a.images.shape == (20, 3, 32, 32) and a.class_names == ["airplane", "automobile", "bird", "cat"]
    assert torch.equal(torch.bincount(a.labels), torch.full((4,), 5))
    b = load_split("cifar10", "test", data_dir=data_root, per_class=5, max_classes=4, seed=3)
    c = load_split("cifar10", "test", data_dir=data_root, per_class=5, max_classes=4, seed=4)
    assert torch.equal(a.rows, b.rows) and torch.equal(a.images, b.images)
    assert not torch.equal(a.rows, c.rows)
    full = load_split("cifar10", "test", data_dir=data_root)
    assert torch.equal(full.images[a.rows], a.images) and torch.equal(full.labels[a.rows], a.labels)


def test_train_per_class_only_applies_to_train(data_root):
    test = load_split("tiny-imagenet-32", "test", data_dir=data_root, train_per_class=1, max_classes=2)
    assert len(test) == 100  # 50 per class, train_per_class ignored for the test split
    train = load_split("tiny-imagenet-32", "train", data_dir=data_root, train_per_class=2, max_classes=3)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    with pytest.raises(ValueError, match="max_classes"):
        load_split("cifar10", "test", data_dir=data_root, max_classes=11)
