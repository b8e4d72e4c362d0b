"""The three sources' claims as data: source 002's roadmap and every headline number of 000 and 001."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["ROADMAP", "SOURCE_001_KEYS", "SOURCE_CLAIMS", "SWIN_T_TOP1", "roadmap_frame", "source_001_key",
           "source_value"]

#: Source 002 (ConvNeXt paper, via "Papers Explained 92"): ImageNet-1K top-1 after each step.
ROADMAP: list[tuple[str, float, str]] = [
    ("ResNet-50 (original recipe)", 76.1, "training"),
    ("modern training recipe", 78.8, "training"),
    ("stage ratio 3:3:9:3", 79.4, "macro"),
    ("patchify stem 4×4/4", 79.5, "macro"),
    ("depthwise conv + width 96", 80.5, "macro"),
    ("inverted bottleneck", 80.6, "macro"),
    ("move depthwise conv up", 79.9, "macro"),
    ("7×7 kernel", 80.6, "macro"),
    ("ReLU → GELU", 80.6, "micro"),
    ("fewer activations", 81.3, "micro"),
    ("fewer norms", 81.4, "micro"),
    ("BatchNorm → LayerNorm", 81.5, "micro"),
    ("separate downsampling", 82.0, "micro"),
]

#: Swin-T's ImageNet-1K top-1 as quoted by source 002 (the target of the roadmap).
SWIN_T_TOP1 = 81.3

#: Every headline number the three sources report, keyed for glue and the results table.
SOURCE_CLAIMS: dict[str, dict[str, Any]] = {
    "000_baseline": dict(source="000", value=82.61, metric="validation-split top-1 (%)",
                         setting="ConvNeXt-T (ImageNet-1K weights), frozen backbone + linear head; "
                                 "Tiny-ImageNet 64 px resized to 224; best epoch of 6 (patience 5)"),
    "000_baseline_loss": dict(source="000", value=0.8057, metric="validation-split loss",
                              setting="baseline, best epoch"),
    "000_baseline_train": dict(source="000", value=91.0, metric="train top-1 (%), approx.", setting="baseline"),
    "000_improved": dict(source="000", value=86.30, metric="validation-split top-1 (%)",
                         setting="full fine-tune + self-attention head + RandAugment + dropout 0.2 + wd 5e-4 "
                                 "+ differential LR + AMP; best epoch 7, stopped at 12"),
    "000_improved_train": dict(source="000", value=74.0, metric="train top-1 (%), approx.", setting="improved"),
    "001_test1_base_radam": dict(source="001", value=35.7, metric="top-1 on 1000 held-out images (%)",
                                 setting="ConvNeXt-V2 base, RAdam lr 1e-3, CIFAR-100 32 px, best of 50 epochs"),
    "001_test2_base_sgd": dict(source="001", value=33.2, metric="top-1 on 1000 held-out images (%)",
                               setting="base, SGD-Nesterov lr 1e-3, 20 epochs"),
    "001_test2_base_radam": dict(source="001", value=30.0, metric="top-1 on 1000 held-out images (%)",
                                 setting="base, RAdam lr 1e-3, 20 epochs"),
    "001_test2_base_adamw": dict(source="001", value=29.3, metric="top-1 on 1000 held-out images (%)",
                                 setting="base, AdamW lr 1e-3, 20 epochs"),
    "001_test3_atto_radam": dict(source="001", value=32.1, metric="top-1 on 1000 held-out images (%)",
                                 setting="atto, RAdam, 50 epochs"),
    "001_test3_nano_radam": dict(source="001", value=32.6, metric="top-1 on 1000 held-out images (%)",
                                 setting="nano, RAdam, 50 epochs"),
    "001_test3_base_radam": dict(source="001", value=35.7, metric="top-1 on 1000 held-out images (%)",
                                 setting="base, RAdam, 50 epochs"),
    "001_test4_tiny_ln": dict(source="001", value=31.8, metric="top-1 on 1000 held-out images (%)",
                              setting="tiny, RAdam, LayerNorm, 20 epochs"),
    "001_test5_tiny_dyt": dict(source="001", value=31.1, metric="top-1 on 1000 held-out images (%)",
                               setting="tiny, RAdam, DyT, 20 epochs"),
    "001_recommended_tiny_sgd": dict(source="001", value=34.1, metric="top-1 on 1000 held-out images (%)",
                                     setting="tiny, SGD-Nesterov (the report's recommendation)"),
    "002_convnext_t": dict(source="002", value=82.0, metric="ImageNet-1K top-1 (%)",
                           setting="ConvNeXt-T at the end of the roadmap, 300 epochs"),
}


def roadmap_frame() -> pd.DataFrame:
    """Source 002's roadmap with the change from the previous step."""
    frame = pd.DataFrame(ROADMAP, columns=["step", "top1", "group"])
    frame["change"] = frame["top1"].diff().round(1)
    return frame


def source_value(key: str) -> float:
    """One number from :data:`SOURCE_CLAIMS` (unknown key: ``KeyError`` listing the keys)."""
    if key not in SOURCE_CLAIMS:
        raise KeyError(f"unknown source claim {key!r}; known: {', '.join(SOURCE_CLAIMS)}")
    return float(SOURCE_CLAIMS[key]["value"])


#: source 001's claims by (model, optimizer, norm) for runs of its own recipe
SOURCE_001_KEYS: dict[tuple[str, str, str], str] = {
    ("convnextv2_base", "radam", "layernorm"): "001_test1_base_radam",
    ("convnextv2_base", "sgd", "layernorm"): "001_test2_base_sgd",
    ("convnextv2_base", "adamw", "layernorm"): "001_test2_base_adamw",
    ("convnextv2_atto", "radam", "layernorm"): "001_test3_atto_radam",
    ("convnextv2_nano", "radam", "layernorm"): "001_test3_nano_radam",
    ("convnextv2_tiny", "radam", "layernorm"): "001_test4_tiny_ln",
    ("convnextv2_tiny", "radam", "dyt"): "001_test5_tiny_dyt",
    ("convnextv2_tiny", "sgd", "layernorm"): "001_recommended_tiny_sgd",
}


def source_001_key(config: Any) -> str | None:
    """The source-001 claim a run of the ``source`` recipe answers (None for other runs)."""
    if (getattr(config, "extra", None) or {}).get("recipe") != "source":
        return None
    return SOURCE_001_KEYS.get((config.model, config.optimizer, config.norm))
