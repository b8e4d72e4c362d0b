"""ConvNeXt V1/V2 models through timm: variants, DyT, attention head, pretrained weights."""

from .dyt import DynamicTanh, convert_ln_to_dyt
from .factory import (
    HEADS,
    NO_WEIGHT_DECAY_MODULES,
    NORMS,
    STEM_STRIDES,
    backbone_parameter_names,
    build_model,
    build_model_from_config,
    freeze_backbone_,
    install_attention_head,
    is_head_param,
    is_no_decay_param,
    no_weight_decay_param_names,
    parameter_report,
    set_stem_stride,
    stage_index,
)
from .heads import AttentionPoolHead
from .pretrained import (
    CheckpointMismatchError,
    PretrainedWeightsUnavailable,
    load_pretrained,
    load_state_dict_into,
    read_checkpoint,
)
from .variants import MODEL_VARIANTS, ModelVariant, get_variant

#: alias asked for by the optimiser owner
no_weight_decay_modules = NO_WEIGHT_DECAY_MODULES

__all__ = [
    "AttentionPoolHead", "CheckpointMismatchError", "DynamicTanh", "HEADS", "MODEL_VARIANTS", "ModelVariant",
    "NORMS", "NO_WEIGHT_DECAY_MODULES", "PretrainedWeightsUnavailable", "STEM_STRIDES",
    "backbone_parameter_names", "build_model", "build_model_from_config", "convert_ln_to_dyt",
    "freeze_backbone_", "get_variant", "install_attention_head", "is_head_param", "is_no_decay_param",
    "load_pretrained", "load_state_dict_into", "no_weight_decay_modules", "no_weight_decay_param_names",
    "parameter_report", "read_checkpoint", "set_stem_stride", "stage_index",
]
