"""The three sources' claims as data: source 002's roadmap and every headline number of 000 and 001."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["ROADMAP", "SOURCE_CLAIMS", "SWIN_T_TOP1", "roadmap_frame", "source_001_key", "source_value"]

#: Source 002 (ConvNeXt paper, via "Papers Explained 92"): ImageNet-1K top-1 after each step.
ROADMAP: list[tuple[str, float, str]] = [
    ("ResNet-50 (original recipe)", 76.1, "training"), ("modern training recipe", 78.8, "training"),
    ("stage ratio 3:3:9:3", 79.4, "macro"), ("patchify stem 4×4/4", 79.5, "macro"),
    ("depthwise conv + width 96", 80.5, "macro"), ("inverted bottleneck", 80.6, "macro"),
    ("move depthwise conv up", 79.9, "macro"), ("7×7 kernel", 80.6, "macro"), ("ReLU → GELU", 80.6, "micro"),
    ("fewer activations", 81.3, "micro"), ("fewer norms", 81.4, "micro"), ("BatchNorm → LayerNorm", 81.5, "micro"),
    ("separate downsampling", 82.0, "micro"),
]
#: Swin-T's ImageNet-1K top-1 as quoted by source 002 (the target of the roadmap).
SWIN_T_TOP1 = 81.3


def _v2(size: str, optimizer: str, norm: str = "layernorm") -> tuple[str, str, str]:
    return f"convnextv2_{size}", optimizer, norm


_HELD = "held-out top-1 (%)"
#: (key, source, value, what it measures, the (model, optimizer, norm) of the runs of ours that answer it)
_CLAIMS: list[tuple[str, str, float, str, tuple[str, str, str] | None]] = [
    ("000_baseline", "000", 82.61, "validation top-1 (%), frozen ConvNeXt-T (ImageNet-1K) + linear head", None),
    ("000_baseline_loss", "000", 0.8057, "validation loss of the baseline", None),
    ("000_baseline_train", "000", 91.0, "train top-1 (%) of the baseline, approx.", None),
    ("000_improved", "000", 86.30, "validation top-1 (%), fine-tune + attention head + regularisation", None),
    ("000_improved_train", "000", 74.0, "train top-1 (%) of the improved model, approx.", None),
    ("001_test1_base_radam", "001", 35.7, f"{_HELD}, base, RAdam, 50 epochs", _v2("base", "radam")),
    ("001_test2_base_sgd", "001", 33.2, f"{_HELD}, base, SGD, 20 epochs", _v2("base", "sgd")),
    ("001_test2_base_radam", "001", 30.0, f"{_HELD}, base, RAdam, 20 epochs", None),
    ("001_test2_base_adamw", "001", 29.3, f"{_HELD}, base, AdamW, 20 epochs", _v2("base", "adamw")),
    ("001_test3_atto_radam", "001", 32.1, f"{_HELD}, atto, RAdam, 50 epochs", _v2("atto", "radam")),
    ("001_test3_nano_radam", "001", 32.6, f"{_HELD}, nano, RAdam, 50 epochs", _v2("nano", "radam")),
    ("001_test3_base_radam", "001", 35.7, f"{_HELD}, base, RAdam, 50 epochs", None),
    ("001_test4_tiny_ln", "001", 31.8, f"{_HELD}, tiny, LayerNorm, RAdam, 20 epochs", _v2("tiny", "radam")),
    ("001_test5_tiny_dyt", "001", 31.1, f"{_HELD}, tiny, DyT, RAdam, 20 epochs", _v2("tiny", "radam", "dyt")),
    ("001_recommended_tiny_sgd", "001", 34.1, f"{_HELD}, tiny, SGD (the recommendation)", _v2("tiny", "sgd")),
    ("002_convnext_t", "002", 82.0, "ImageNet-1K top-1 (%), ConvNeXt-T, 300 epochs", None),
]
#: Every headline number the three sources report, keyed for headlines, prose and the results table.
SOURCE_CLAIMS: dict[str, dict[str, Any]] = {key: dict(source=source, value=value, metric=metric, answered_by=runs)
                                            for key, source, value, metric, runs in _CLAIMS}


def roadmap_frame() -> pd.DataFrame:
    """Source 002's roadmap: each step, its ImageNet-1K top-1, its design level and the change from the step before."""
    frame = pd.DataFrame(ROADMAP, columns=["step", "ImageNet-1K top-1 (%)", "design level"])
    return frame.assign(**{"change (points)": frame["ImageNet-1K top-1 (%)"].diff()})


def source_value(key: str) -> float:
    """One number from :data:`SOURCE_CLAIMS` (unknown key: ``KeyError`` listing the keys)."""
    if key not in SOURCE_CLAIMS:
        raise KeyError(f"unknown source claim {key!r}; known: {', '.join(SOURCE_CLAIMS)}")
    return float(SOURCE_CLAIMS[key]["value"])


def source_001_key(config: Any) -> str | None:
    """The source-001 claim a run of the ``source`` recipe answers (None for other runs)."""
    if (getattr(config, "extra", None) or {}).get("recipe") != "source":
        return None
    runs = (config.model, config.optimizer, config.norm)
    return next((k for k, c in SOURCE_CLAIMS.items() if c["answered_by"] == runs), None)
