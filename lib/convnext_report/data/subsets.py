"""Row selections: the first K classes and balanced, seeded per-class subsets."""

from __future__ import annotations

import torch

__all__ = ["balanced_subset", "first_k_classes", "select_rows"]


def first_k_classes(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted row indices whose label is < ``k`` (labels stay 0..k-1)."""
    if k < 1:
        raise ValueError(f"max_classes must be >= 1, got {k}")
    return torch.nonzero(labels < k).flatten()


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Sorted row indices with exactly ``per_class`` rows of every class present, chosen by ``seed``."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labels = labels.to(torch.int64).cpu()
    g = torch.Generator().manual_seed(seed)
    # one random key per row, then the per_class smallest keys inside each class
    order = torch.randperm(len(labels), generator=g)
    order = order[torch.sort(labels[order], stable=True).indices]  # grouped by class, random within
    classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(classes, counts) if n < per_class]
    if short:
        raise ValueError(
            f"per_class={per_class} exceeds the rows of {len(short)} class(es) "
            f"(e.g. class {short[0][0]} has {short[0][1]}); use per_class <= {int(counts.min())}"
        )
    starts = torch.cumsum(counts, 0) - counts
    take = (starts[:, None] + torch.arange(per_class)[None, :]).flatten()
    return torch.sort(order[take]).values


def select_rows(
    labels: torch.Tensor, *, per_class: int | None = None, max_classes: int | None = None, seed: int = 0
) -> torch.Tensor | None:
    """Rows kept by ``max_classes`` then ``per_class`` (``None``: all rows)."""
    if per_class is None and max_classes is None:
        return None
    rows = torch.arange(len(labels))
    if max_classes is not None:
        rows = first_k_classes(labels, max_classes)
    if per_class is not None:
        rows = rows[balanced_subset(labels[rows], per_class, seed)]
    return rows
