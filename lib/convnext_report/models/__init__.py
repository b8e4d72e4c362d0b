"""ConvNeXt V1/V2 models through timm: variants, DyT, attention head, pretrained weights."""

from .dyt import DynamicTanh, convert_ln_to_dyt, dyt_alphas
from .factory import (HEADS, MODEL_OPTIONS, NORMS, STEM_STRIDES, build_model, build_model_from_config, freeze_backbone_,
                      install_attention_head, is_head_param, model_options, set_stem_stride)
from .heads import AttentionPoolHead
from .pretrained import (CheckpointMismatchError, PretrainedWeightsUnavailable, UnreadableCheckpointError,
                         load_pretrained, load_state_dict_into, read_checkpoint)
from .variants import MODEL_VARIANTS, ModelVariant, get_variant

__all__ = [
    "AttentionPoolHead", "CheckpointMismatchError", "DynamicTanh", "HEADS", "MODEL_OPTIONS", "MODEL_VARIANTS",
    "ModelVariant", "NORMS", "PretrainedWeightsUnavailable", "STEM_STRIDES", "UnreadableCheckpointError", "build_model",
    "build_model_from_config", "convert_ln_to_dyt", "dyt_alphas", "freeze_backbone_", "get_variant",
    "install_attention_head", "is_head_param", "load_pretrained", "load_state_dict_into", "model_options",
    "read_checkpoint", "set_stem_stride",
]
