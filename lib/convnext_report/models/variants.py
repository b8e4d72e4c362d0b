"""ConvNeXt V1 and V2 variants as data: depths and widths per stage, as the papers and timm define them.

V1: Liu et al., "A ConvNet for the 2020s" (CVPR 2022), Table 9 / timm ``convnext_*``.
V2: Woo et al., "ConvNeXt V2" (CVPR 2023), Table 1 / timm ``convnextv2_*`` (GRN in every block).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODEL_VARIANTS", "ModelVariant", "get_variant"]


@dataclass(frozen=True)
class ModelVariant:
    """One buildable ConvNeXt: its timm name, family and per-stage depths and widths."""

    name: str  #: timm model name
    family: str  #: "v1" or "v2"
    depths: tuple[int, ...]  #: blocks per stage
    dims: tuple[int, ...]  #: channels per stage


_V1_DIMS_96 = (96, 192, 384, 768)

MODEL_VARIANTS: dict[str, ModelVariant] = {
    v.name: v
    for v in (
        ModelVariant("convnext_tiny", "v1", (3, 3, 9, 3), _V1_DIMS_96),
        ModelVariant("convnext_small", "v1", (3, 3, 27, 3), _V1_DIMS_96),
        ModelVariant("convnext_base", "v1", (3, 3, 27, 3), (128, 256, 512, 1024)),
        ModelVariant("convnext_large", "v1", (3, 3, 27, 3), (192, 384, 768, 1536)),
        ModelVariant("convnext_xlarge", "v1", (3, 3, 27, 3), (256, 512, 1024, 2048)),
        ModelVariant("convnextv2_atto", "v2", (2, 2, 6, 2), (40, 80, 160, 320)),
        ModelVariant("convnextv2_femto", "v2", (2, 2, 6, 2), (48, 96, 192, 384)),
        ModelVariant("convnextv2_pico", "v2", (2, 2, 6, 2), (64, 128, 256, 512)),
        ModelVariant("convnextv2_nano", "v2", (2, 2, 8, 2), (80, 160, 320, 640)),
        ModelVariant("convnextv2_tiny", "v2", (3, 3, 9, 3), _V1_DIMS_96),
        ModelVariant("convnextv2_base", "v2", (3, 3, 27, 3), (128, 256, 512, 1024)),
        ModelVariant("convnextv2_large", "v2", (3, 3, 27, 3), (192, 384, 768, 1536)),
        ModelVariant("convnextv2_huge", "v2", (3, 3, 27, 3), (352, 704, 1408, 2816)),
    )
}


def get_variant(name: str) -> ModelVariant:
    """The variant called ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return MODEL_VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid models are: {', '.join(MODEL_VARIANTS)}"
        ) from None
