"""Training recipes as data, and grids of runs over them (chapters 6 and 7)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["RECIPES", "grid", "recipe"]

#: Training recipes of chapters 6 and 7 (TrainConfig fields): both select the epoch on held-out training images
#: and evaluate the test split every epoch only to show what selecting on it (the sources' protocol) would report.
RECIPES: dict[str, dict[str, Any]] = {
    # source 001 as written: ImageNet stem, lr 1e-3 held constant, no augmentation, no regularisation
    "source": dict(stem_stride=4, lr=1e-3, schedule="constant", warmup_epochs=0.0, weight_decay=0.0,
                   crop_padding=0, hflip=False, randaugment=None, label_smoothing=0.0, drop_path_rate=0.0,
                   batch_size=64, test_every_epoch=True),
    # a recipe made for 32-pixel images: stride-2 stem, AdamW, warmup + cosine, augmentation, regularisation
    "small-image": dict(stem_stride=2, optimizer="adamw", lr=2e-3, schedule="cosine", warmup_epochs=5.0,
                        weight_decay=0.05, crop_padding=4, hflip=True, randaugment="n2m9", label_smoothing=0.1,
                        drop_path_rate=0.1, batch_size=128, test_every_epoch=True),
}


def recipe(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of ``RECIPES[name]`` with ``changes``, tagged ``extra={"recipe": name}``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return {**RECIPES[name], **changes, "extra": {"recipe": name}}


def grid(base: Mapping[str, Any], **axes: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Every combination of ``axes`` on top of ``base``: ``"a / b" -> {**base, axis: value, ...}``.

    >>> list(grid({}, model=["atto", "nano"], optimizer=["sgd"]))
    ['atto / sgd', 'nano / sgd']
    """
    return {" / ".join(map(str, values)): {**base, **dict(zip(axes, values))}
            for values in itertools.product(*axes.values())}
