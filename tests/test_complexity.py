"""Parameters, MACs and the architecture table against known values."""

from __future__ import annotations

import pytest
import torch

from convnext_report.complexity import complexity_table, count_macs, count_parameters, stage_shapes
from convnext_report.models import MODEL_VARIANTS, build_model


@pytest.mark.parametrize(
    "name, params_m, gmacs",
    [("convnext_tiny", 28.59, 4.47), ("convnextv2_atto", 3.71, 0.55)],
)
def test_known_params_and_macs_at_224(name, params_m, gmacs):
    with torch.device("meta"):
        model = build_model(name, 1000, stem_stride=4)  # the ImageNet model the papers count
    assert count_parameters(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert count_macs(model, 224) / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_meta_and_cpu_counts_agree_and_mode_is_restored():
    model = build_model("convnextv2_atto", 10, stem_stride=2).train()
    with torch.device("meta"):
        meta = build_model("convnextv2_atto", 10, stem_stride=2)
    assert count_macs(model, 32) == count_macs(meta, 32)
    assert model.training
    assert stage_shapes(model, 32) == stage_shapes(meta, 32)


def test_smaller_stem_stride_costs_about_four_times_more():
    with torch.device("meta"):
        s4, s2 = build_model("convnextv2_atto", 100, stem_stride=4), build_model("convnextv2_atto", 100, stem_stride=2)
    ratio = count_macs(s2, 32) / count_macs(s4, 32)
    assert 3.0 < ratio < 4.5


def test_trainable_only():
    model = build_model("convnextv2_atto", 10, freeze_backbone=True)
    head = sum(p.numel() for p in model.head.parameters())
    assert count_parameters(model, trainable_only=True) == head < count_parameters(model)


def test_complexity_table():
    names = ["convnextv2_atto", "convnext_tiny"]
    df = complexity_table(names, image_sizes=(224, 32), stem_stride=4)
    assert list(df.columns) == ["model", "family", "depths", "dims", "params_M", "GMACs_224", "GMACs_32"]
    assert list(df["model"]) == names and list(df["family"]) == ["v2", "v1"]
    assert df.loc[1, "depths"] == MODEL_VARIANTS["convnext_tiny"].depths
    assert df.loc[1, "params_M"] == pytest.approx(28.59, rel=0.02)
    assert (df["GMACs_224"] > 40 * df["GMACs_32"]).all()
    with pytest.raises(ValueError, match="valid models"):
        complexity_table(["vgg16"])


def test_stage_shapes_rejects_other_models():
    with pytest.raises(TypeError, match="ConvNeXt"):
        stage_shapes(torch.nn.Linear(2, 2), 32)
