"""Row selections: the first K classes, balanced seeded per-class subsets, and a held-out part."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["balanced_subset", "first_k_classes", "held_out_count", "holdout_split", "select_rows"]


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


def held_out_count(rows: int, fraction: float) -> int:
    """How many of a class's ``rows`` :func:`holdout_split` holds out: ``round(fraction * rows)``, at least one,
    and at least one left to train on."""
    return min(max(1, round(rows * fraction)), rows - 1)


def holdout_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept rows, held-out rows), both sorted: :func:`held_out_count` rows of every class held out, chosen
    by ``seed``.

    Model selection (early stopping, the best epoch) uses the held-out rows, so the reported split
    is looked at once. The generator is derived from ``seed`` with its own stream, so the held-out
    rows do not follow the shuffling order of a run with the same seed.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    labels = labels.to(torch.int64).cpu()
    state = np.random.SeedSequence([seed, 0x401D]).generate_state(1)
    g = torch.Generator().manual_seed(int(state[0]))
    order = torch.randperm(len(labels), generator=g)
    order = order[torch.sort(labels[order], stable=True).indices]  # grouped by class, random within
    classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
    if int(counts.min()) < 2:
        small = int(classes[counts.argmin()])
        raise ValueError(f"class {small} has {int(counts.min())} training image(s): holding out part of it "
                         "leaves nothing to train on; use more images per class or selection='test'")
    starts = torch.cumsum(counts, 0) - counts
    held_mask = torch.zeros(len(labels), dtype=torch.bool)
    for start, n in zip(starts.tolist(), counts.tolist()):
        held_mask[start:start + held_out_count(n, fraction)] = True
    return torch.sort(order[~held_mask]).values, torch.sort(order[held_mask]).values
