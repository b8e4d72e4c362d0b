"""Parameter groups (weight decay, lr scales), optimiser choice and per-iteration schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convnext_report.config import TrainConfig
from convnext_report.models import build_model
from convnext_report.optim import build_optimizer, build_scheduler, param_groups


def _group_of(groups: list[dict]) -> dict[str, dict]:
    return {name: g for g in groups for name in g["param_names"]}


@pytest.fixture(scope="module")
def dyt_model() -> nn.Module:
    return build_model("convnextv2_atto", 10, norm="dyt", head="attention", stem_stride=2)


def test_no_weight_decay_on_norms_biases_dyt_grn(dyt_model: nn.Module) -> None:
    groups = param_groups(dyt_model, weight_decay=0.05, head_weight_decay=5e-4)
    by_name = _group_of(groups)
    assert set(by_name) == {n for n, p in dyt_model.named_parameters() if p.requires_grad}
    alphas = [n for n in by_name if n.endswith("alpha")]
    grn = [n for n in by_name if ".grn." in n]
    biases = [n for n in by_name if n.endswith(".bias")]
    assert alphas and grn and biases
    for name in alphas + grn + biases:
        assert by_name[name]["weight_decay"] == 0.0, name
    for name, module in dyt_model.named_modules():
        if type(module).__name__ == "DynamicTanh":
            for pname, _ in module.named_parameters(recurse=False):
                assert by_name[f"{name}.{pname}"]["weight_decay"] == 0.0
    conv = "stages.1.blocks.0.conv_dw.weight"
    assert by_name[conv]["weight_decay"] == 0.05 and by_name[conv]["lr_scale"] == 1.0


def test_norm_modules_are_not_decayed_in_any_model() -> None:
    from timm.layers.grn import GlobalResponseNorm

    from convnext_report.models import DynamicTanh

    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 8, 2))
    model.add_module("norm", nn.LayerNorm(8))
    model.add_module("dyt", DynamicTanh(8, channels_last=True))
    model.add_module("grn", GlobalResponseNorm(8))
    model.add_module("head", nn.Linear(8, 2))
    by_name = _group_of(param_groups(model, weight_decay=0.1))
    for name in ("norm.weight", "norm.bias", "dyt.alpha", "dyt.weight", "dyt.bias", "grn.weight", "grn.bias",
                 "stem.bias", "head.bias"):
        assert by_name[name]["weight_decay"] == 0.0, name
    assert by_name["stem.weight"]["weight_decay"] == 0.1 and by_name["head.weight"]["weight_decay"] == 0.1


def test_head_weight_decay_and_differential_lr(dyt_model: nn.Module) -> None:
    groups = param_groups(dyt_model, weight_decay=0.05, head_weight_decay=5e-4, backbone_lr_scale=0.1)
    for g in groups:
        head = all(n.startswith("head.") for n in g["param_names"])
        assert head == g["group"].startswith("head")
        if head:
            assert g["lr_scale"] == 1.0
            assert g["weight_decay"] in (0.0, 5e-4)
        else:
            assert g["lr_scale"] == pytest.approx(0.1)
            assert g["weight_decay"] in (0.0, 0.05)
    assert any(g["group"] == "head/decay" and g["weight_decay"] == 5e-4 for g in groups)


def test_layer_decay_over_stages(dyt_model: nn.Module) -> None:
    by_name = _group_of(param_groups(dyt_model, weight_decay=0.05, backbone_lr_scale=0.5, layer_decay=0.8))
    # layers: stem 0, stages 1..4, head 5
    assert by_name["stem.0.weight"]["lr_scale"] == pytest.approx(0.5 * 0.8**5)
    assert by_name["stages.0.blocks.0.conv_dw.weight"]["lr_scale"] == pytest.approx(0.5 * 0.8**4)
    assert by_name["stages.3.blocks.0.conv_dw.weight"]["lr_scale"] == pytest.approx(0.5 * 0.8)
    assert all(g["lr_scale"] == 1.0 for g in by_name.values() if g["group"].startswith("head"))


def test_frozen_parameters_are_left_out() -> None:
    model = build_model("convnextv2_atto", 10, stem_stride=2, freeze_backbone=True)
    groups = param_groups(model, weight_decay=0.05)
    names = [n for g in groups for n in g["param_names"]]
    assert names and all(n.startswith("head.") for n in names)


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", torch.optim.SGD), ("radam", torch.optim.RAdam), ("adamw", torch.optim.AdamW)]
)
def test_optimizers_of_the_source(dyt_model: nn.Module, name: str, cls: type) -> None:
    # seed 001: SGD(lr=1e-3, momentum=0.9, nesterov=True), RAdam(lr=1e-3), AdamW(lr=1e-3), constant lr
    config = TrainConfig(optimizer=name, lr=1e-3, weight_decay=0.0, schedule="constant")
    opt = build_optimizer(dyt_model, config)
    assert type(opt) is cls
    build_scheduler(opt, config, steps_per_epoch=10)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(1e-3) and g["weight_decay"] == 0.0
        if name == "sgd":
            assert g["nesterov"] and g["momentum"] == 0.9
        else:
            assert g["betas"] == (0.9, 0.999)


def _lrs_at(scheduler, opt, t: int) -> list[float]:
    scheduler.step_update(num_updates=t)
    return [g["lr"] for g in opt.param_groups]


def test_warmup_cosine_per_iteration() -> None:
    model = nn.Sequential()
    model.add_module("stem", nn.Linear(4, 4))
    model.add_module("head", nn.Linear(4, 2))
    config = TrainConfig(lr=1e-3, epochs=5, warmup_epochs=1, min_lr_ratio=0.01, backbone_lr_scale=0.1)
    groups = param_groups(model, weight_decay=0.05, backbone_lr_scale=0.1)
    opt = torch.optim.AdamW(groups, lr=config.lr)
    sched = build_scheduler(opt, config, steps_per_epoch=10)
    scales = [g["lr_scale"] for g in opt.param_groups]
    lr, floor, total = 1e-3, 1e-5, 50

    def cosine(t: int) -> float:
        return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * t / total))

    expected = {0: 0.0, 5: 0.5 * lr, 10: cosine(10), 30: cosine(30), 50: floor}
    for t, value in expected.items():
        got = _lrs_at(sched, opt, t)
        assert got == pytest.approx([value * s for s in scales], rel=1e-6, abs=1e-12), t
    assert sorted(set(scales)) == [0.1, 1.0]


def test_constant_schedule_with_warmup() -> None:
    model = nn.Linear(4, 2)
    config = TrainConfig(lr=1e-3, epochs=3, warmup_epochs=0.5, schedule="constant")
    opt = torch.optim.SGD(param_groups(model, weight_decay=0.0), lr=config.lr)
    sched = build_scheduler(opt, config, steps_per_epoch=4)
    assert _lrs_at(sched, opt, 1)[0] == pytest.approx(0.5e-3)
    assert _lrs_at(sched, opt, 2)[0] == pytest.approx(1e-3)
    assert _lrs_at(sched, opt, 11)[0] == pytest.approx(1e-3)
