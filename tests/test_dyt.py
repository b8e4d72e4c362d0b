"""DynamicTanh and convert_ln_to_dyt."""

from __future__ import annotations

import pytest
import torch
from timm.layers import LayerNorm2d
from timm.models.convnext import ConvNeXt
from torch import nn

from convnext_report.models import DynamicTanh, build_model, convert_ln_to_dyt


def test_dynamic_tanh_formula_channels_last_and_first():
    torch.manual_seed(0)
    cl = DynamicTanh(6, channels_last=True)
    assert cl.alpha.shape == (1,) and cl.alpha.item() == pytest.approx(0.5)
    with torch.no_grad():
        cl.weight.uniform_(), cl.bias.uniform_()
    x = torch.randn(2, 3, 4, 6)
    assert torch.allclose(cl(x), cl.weight * torch.tanh(0.5 * x) + cl.bias)

    cf = DynamicTanh((6,), channels_last=False, alpha_init=2.0)
    with torch.no_grad():
        cf.weight.copy_(cl.weight), cf.bias.copy_(cl.bias)
    xcf = x.permute(0, 3, 1, 2)
    expected = (cl.weight * torch.tanh(2.0 * x) + cl.bias).permute(0, 3, 1, 2)
    assert torch.allclose(cf(xcf), expected, atol=1e-6)
    assert "channels_last=False" in repr(cf)
    with pytest.raises(ValueError):
        DynamicTanh((4, 4), channels_last=True)


@pytest.mark.parametrize("conv_mlp, use_grn", [(False, False), (True, True)])
def test_convert_replaces_every_layernorm(conv_mlp, use_grn):
    torch.manual_seed(0)
    model = ConvNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), num_classes=7, conv_mlp=conv_mlp,
                     use_grn=use_grn, ls_init_value=None if use_grn else 1e-6)
    lns = {n: isinstance(m, LayerNorm2d) for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    assert lns
    x = torch.randn(2, 3, 32, 32)
    shapes_before = model.forward_features(x).shape, model(x).shape

    out = convert_ln_to_dyt(model, alpha_init=0.8)
    assert out is model
    mods = dict(model.named_modules())
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    for name, channels_first in lns.items():
        assert isinstance(mods[name], DynamicTanh)
        assert mods[name].channels_last is (not channels_first)
        assert mods[name].alpha.item() == pytest.approx(0.8)
    assert (model.forward_features(x).shape, model(x).shape) == shapes_before

    model(x).square().mean().backward()
    for m in model.modules():
        if isinstance(m, DynamicTanh):
            assert m.alpha.grad is not None and m.alpha.grad.abs().sum() > 0


def test_convert_root_layernorm_and_build_model_dyt():
    assert isinstance(convert_ln_to_dyt(nn.LayerNorm(8)), DynamicTanh)
    model = build_model("convnextv2_atto", 10, norm="dyt", head="attention", head_num_heads=4)
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert isinstance(model.head.norm, DynamicTanh) and model.head.norm.channels_last
    assert not model.stem[1].channels_last  # LayerNorm2d -> channels-first DyT
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
