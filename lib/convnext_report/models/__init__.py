"""ConvNeXt V1/V2 models through timm: variants, DyT, attention head, pretrained weights."""

from .dyt import DynamicTanh, convert_ln_to_dyt, dyt_alphas
from .factory import (
    HEADS,
    NORMS,
    STEM_STRIDES,
    backbone_parameter_names,
    build_model,
    build_model_from_config,
    freeze_backbone_,
    install_attention_head,
    is_head_param,
    parameter_report,
    set_stem_stride,
)
from .heads import AttentionPoolHead
from .pretrained import (
    CheckpointMismatchError,
    PretrainedWeightsUnavailable,
    UnsafeCheckpointError,
    load_pretrained,
    load_state_dict_into,
    read_checkpoint,
)
from .variants import MODEL_VARIANTS, ModelVariant, get_variant

__all__ = [
    "AttentionPoolHead", "CheckpointMismatchError", "DynamicTanh", "HEADS", "MODEL_VARIANTS", "ModelVariant",
    "NORMS", "PretrainedWeightsUnavailable", "STEM_STRIDES", "UnsafeCheckpointError", "backbone_parameter_names",
    "build_model", "build_model_from_config", "convert_ln_to_dyt", "dyt_alphas", "freeze_backbone_", "get_variant",
    "install_attention_head", "is_head_param", "load_pretrained", "load_state_dict_into", "parameter_report",
    "read_checkpoint", "set_stem_stride",
]
