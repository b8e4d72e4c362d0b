"""build_model: variants, options, errors, stem strides, freezing, config mapping."""

from __future__ import annotations

import pytest
import timm
import torch

from convnext_report.complexity import stage_shapes
from convnext_report.config import TrainConfig
from convnext_report.models import (
    MODEL_OPTIONS,
    MODEL_VARIANTS,
    AttentionPoolHead,
    DynamicTanh,
    build_model,
    build_model_from_config,
    get_variant,
    is_head_param,
    model_options,
)
from convnext_report.optim import param_groups

SMALL = "convnextv2_atto"


@pytest.mark.parametrize("name", list(MODEL_VARIANTS))
def test_variants_match_timm(name):
    variant = MODEL_VARIANTS[name]
    with torch.device("meta"):  # no memory, even for xlarge/huge
        model = timm.create_model(name, num_classes=0)
    assert tuple(len(s.blocks) for s in model.stages) == variant.depths
    assert tuple(s.blocks[0].conv_dw.out_channels for s in model.stages) == variant.dims
    assert variant.family == ("v2" if name.startswith("convnextv2") else "v1")
    uses_grn = any(type(m).__name__ == "GlobalResponseNorm" for m in model.modules())
    assert uses_grn == (variant.family == "v2")


def test_variant_names_cover_the_issue():
    v1 = {f"convnext_{s}" for s in ("tiny", "small", "base", "large", "xlarge")}
    v2 = {f"convnextv2_{s}" for s in ("atto", "femto", "pico", "nano", "tiny", "base", "large", "huge")}
    assert set(MODEL_VARIANTS) == v1 | v2


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(name="resnet50"), "convnextv2_atto"),
        (dict(name=SMALL, norm="batchnorm"), "layernorm, dyt"),
        (dict(name=SMALL, head="mlp"), "linear, attention"),
        (dict(name=SMALL, stem_stride=3), "1, 2, 4"),
    ],
)
def test_unknown_choices_raise_listing_valid_ones(kwargs, word):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match="valid") as err:
        build_model(name, 10, **kwargs)
    assert word in str(err.value)
    with pytest.raises(ValueError, match="convnext_tiny"):
        get_variant("convnext_huge")


def test_forward_and_options_reach_timm():
    model = build_model(SMALL, 10, drop_path_rate=0.2, head_dropout=0.3)
    assert isinstance(model, timm.models.convnext.ConvNeXt)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.num_classes == 10 and model.head.fc.out_features == 10
    assert model.stages[-1].blocks[-1].drop_path.drop_prob == pytest.approx(0.2)
    assert model.head.drop.p == pytest.approx(0.3)
    assert model.pretrained_report is None


EXPECTED = {  # (stem_stride, image_size) -> spatial side of stages 0..3
    (4, 224): (56, 28, 14, 7), (4, 64): (16, 8, 4, 2), (4, 32): (8, 4, 2, 1),
    (2, 224): (112, 56, 28, 14), (2, 64): (32, 16, 8, 4), (2, 32): (16, 8, 4, 2),
    (1, 32): (32, 16, 8, 4),
}


@pytest.mark.parametrize("stride, size", list(EXPECTED))
def test_stage_shapes_per_stem_stride(stride, size):
    with torch.device("meta"):  # shapes only; test_complexity checks meta == CPU
        model = build_model(SMALL, 10, stem_stride=stride)
    shapes = stage_shapes(model, size)
    assert [n for n, _ in shapes] == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    assert tuple(s[1] for _, s in shapes[1:]) == EXPECTED[(stride, size)]
    assert tuple(s[0] for _, s in shapes[1:]) == MODEL_VARIANTS[SMALL].dims
    assert [i["reduction"] for i in model.feature_info] == [stride * 2**i for i in range(4)]
    assert model.stem[0].kernel_size == (stride, stride) and model.stem[0].stride == (stride, stride)


def test_freeze_backbone_leaves_only_head_trainable():
    model = build_model(SMALL, 10, head="attention", head_num_heads=4, freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    assert trainable == {n for n, _ in model.named_parameters() if is_head_param(n)}
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("head."))
    assert model.head.fc.weight.grad is not None


def test_build_model_from_config_maps_fields():
    cfg = TrainConfig(model=SMALL, norm="dyt", dyt_alpha_init=0.7, head="attention", head_num_heads=4,
                      head_dropout=0.2, drop_path_rate=0.05, stem_stride=1, freeze_backbone=True)
    model = build_model_from_config(cfg, 7)
    assert isinstance(model.head, AttentionPoolHead) and model.head.num_heads == 4
    assert model.head.drop.p == pytest.approx(0.2) and model.num_classes == 7
    assert model.stem[0].stride == (1, 1)
    dyt = [m for m in model.modules() if isinstance(m, DynamicTanh)]
    assert dyt and all(m.alpha.item() == pytest.approx(0.7) for m in dyt)
    assert model.stages[-1].blocks[-1].drop_path.drop_prob == pytest.approx(0.05)
    assert not model.stem[0].weight.requires_grad


def test_model_options_are_build_models_keywords_and_config_fields():
    """One place names the options (build_model's signature); the config has a field for each."""
    import inspect

    assert MODEL_OPTIONS == tuple(n for n, p in inspect.signature(build_model).parameters.items()
                                  if p.kind is p.KEYWORD_ONLY)
    assert set(MODEL_OPTIONS) <= set(TrainConfig.__dataclass_fields__) and "stem_stride" in MODEL_OPTIONS
    cfg = TrainConfig(norm="dyt", head_dropout=0.2)
    assert model_options(cfg) == {n: getattr(cfg, n) for n in MODEL_OPTIONS}


@pytest.mark.parametrize("head", ["linear", "attention"])
def test_head_params_are_named_head(head):
    with torch.device("meta"):
        model = build_model(SMALL, 10, head=head)
    head_names = {f"head.{n}" for n, _ in model.head.named_parameters()}
    assert head_names == {n for n, _ in model.named_parameters() if is_head_param(n)}
    # timm's API still works on the replaced head
    x = torch.randn(2, 3, 32, 32, device="meta")
    feats = model.forward_features(x)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 320)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    assert model.get_classifier().out_features == 5


def test_no_weight_decay_names_cover_dyt_grn_and_biases():
    model = build_model(SMALL, 10, norm="dyt", head="attention")
    groups = param_groups(model, weight_decay=0.05)
    names = {n for g in groups if g["weight_decay"] == 0.0 for n in g["param_names"]}
    params = dict(model.named_parameters())
    assert all(n in names for n in params if n.endswith(".alpha"))
    assert all(n in names for n in params if ".grn." in n)
    assert all(n in names for n in params if params[n].ndim <= 1)
    assert "stem.0.weight" not in names and "head.fc.weight" not in names
    assert "head.attn.qkv.weight" not in names  # attention weights get (head) weight decay

def test_one_default_stem_stride_everywhere():
    from convnext_report.choices import DEFAULT_STEM_STRIDE
    from convnext_report.complexity import complexity_table

    with torch.device("meta"):
        model = build_model(SMALL, 10)
    assert model.stem[0].stride == (DEFAULT_STEM_STRIDE, DEFAULT_STEM_STRIDE) == (2, 2)
    assert TrainConfig().stem_stride == DEFAULT_STEM_STRIDE
    same = complexity_table([SMALL], image_sizes=[32])["GMACs_32"].iloc[0]
    assert same == complexity_table([SMALL], image_sizes=[32], stem_stride=2)["GMACs_32"].iloc[0]
