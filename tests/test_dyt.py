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


# --- bf16 stays bf16: DyT and GRN compute in the input's dtype, their parameters stay fp32 ---

def _close_to_fp32(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())


@pytest.mark.parametrize("channels_last", [True, False])
def test_dynamic_tanh_keeps_bf16(channels_last):
    torch.manual_seed(0)
    dyt = DynamicTanh(8, channels_last=channels_last, alpha_init=0.7)
    with torch.no_grad():
        dyt.weight.uniform_(0.5, 1.5), dyt.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 4, 8) * 3 if channels_last else torch.randn(2, 8, 4, 4) * 3
    ref = dyt(x)
    assert ref.dtype == torch.float32
    _close_to_fp32(dyt(x.bfloat16()), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _close_to_fp32(dyt(x.bfloat16()), ref)
    dyt(x.bfloat16()).float().sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in dyt.parameters())
    assert dyt.alpha.grad.abs().item() > 0


def _timm_grn(channels_last: bool):
    from timm.layers.grn import GlobalResponseNorm as TimmGRN

    torch.manual_seed(0)
    grn = TimmGRN(16, channels_last=channels_last)
    with torch.no_grad():
        grn.weight.normal_(), grn.bias.normal_()
    return grn


@pytest.mark.parametrize("channels_last", [True, False])
def test_grn_conversion_keeps_parameters_and_fp32_results(channels_last):
    from convnext_report.models.grn import GlobalResponseNorm, convert_grn

    timm_grn = _timm_grn(channels_last)
    x = torch.randn(3, 5, 5, 16) if channels_last else torch.randn(3, 16, 5, 5)
    ref = timm_grn(x)
    root = nn.Sequential(timm_grn)
    weight = timm_grn.weight
    convert_grn(root)
    ours = root[0]
    assert type(ours) is GlobalResponseNorm and ours.weight is weight  # same parameter objects
    assert list(root.state_dict()) == ["0.weight", "0.bias"]
    torch.testing.assert_close(ours(x), ref, rtol=1e-5, atol=1e-5)
    _close_to_fp32(ours(x.bfloat16()), ref)
    assert timm_grn(x.bfloat16()).dtype == torch.float32  # what timm's does: promotes to fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _close_to_fp32(ours(x.bfloat16()), ref)


def test_build_model_installs_the_dtype_preserving_grn_with_timm_keys():
    from timm import create_model
    from timm.layers.grn import GlobalResponseNorm as TimmGRN

    from convnext_report.models.grn import GlobalResponseNorm

    v2 = build_model("convnextv2_atto", 10, stem_stride=4)
    grns = [m for m in v2.modules() if isinstance(m, TimmGRN)]
    assert grns and all(type(m) is GlobalResponseNorm for m in grns)
    reference = create_model("convnextv2_atto", num_classes=10)  # timm's own, timm's GRN
    assert list(v2.state_dict()) == list(reference.state_dict())
    v2.load_state_dict(reference.state_dict())  # strict: checkpoints still load
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(v2.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-4)
    with torch.device("meta"):
        v1 = build_model("convnext_tiny", 10)
    assert not any(isinstance(m, TimmGRN) for m in v1.modules())  # V1 has no GRN


def test_a_whole_v2_dyt_model_stays_bf16_through_dyt_and_grn():
    from convnext_report.models.grn import GlobalResponseNorm

    model = build_model("convnextv2_atto", 10, norm="dyt", stem_stride=2).eval()
    seen: dict[str, tuple[torch.dtype, torch.dtype]] = {}
    for name, module in model.named_modules():
        if isinstance(module, (DynamicTanh, GlobalResponseNorm)):
            module.register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, (i[0].dtype, o.dtype)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(2, 3, 32, 32))
    assert sum(".grn" in n for n in seen) == 12 and any(".norm" in n for n in seen)
    promoted = {n: d for n, d in seen.items() if d[0] == torch.bfloat16 and d[1] != torch.bfloat16}
    assert not promoted
    assert all(o == torch.bfloat16 for n, (i, o) in seen.items() if ".grn" in n)
