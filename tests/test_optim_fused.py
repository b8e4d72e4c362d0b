"""Fused / foreach optimisers on CUDA (chosen, not run, here) and unchanged CPU optimisers."""

from __future__ import annotations

import pytest
import torch
from timm.optim import create_optimizer_v2
from torch import nn

from convnext_report.config import TrainConfig
from convnext_report.optim import build_optimizer, implementation_kwargs, param_groups, set_implementation

CUDA = torch.device("cuda")


@pytest.mark.parametrize("name, expected", [("adamw", {"fused": True}), ("sgd", {"fused": True}),
                                            ("radam", {"foreach": True}), ("AdamW", {"fused": True})])
def test_cuda_gets_fused_where_torch_has_it_else_foreach(name, expected) -> None:
    assert implementation_kwargs(name, CUDA) == expected
    assert implementation_kwargs(name, "cuda:1") == expected
    assert implementation_kwargs(name, "cpu") == {}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.LayerNorm([8, 6, 6]), nn.Flatten(), nn.Linear(288, 4))


@pytest.mark.parametrize("name", ["adamw", "sgd", "radam"])
def test_a_cuda_device_builds_the_cuda_implementation_with_the_same_groups(name) -> None:
    config = TrainConfig(optimizer=name, lr=1e-3, weight_decay=0.05)
    model = _model()
    cpu = build_optimizer(model, config)  # device: where the parameters are
    cuda = build_optimizer(model, config, device=CUDA)  # constructed only (torch accepts CPU params)
    assert all(g.get("fused") is None and g.get("foreach") is None for g in cpu.param_groups)
    key, value = next(iter(implementation_kwargs(name, CUDA).items()))
    assert all(g[key] is value for g in cuda.param_groups)
    strip = {"fused", "foreach"}
    assert [{k: v for k, v in g.items() if k not in strip} for g in cpu.param_groups] == \
        [{k: v for k, v in g.items() if k not in strip} for g in cuda.param_groups]


@pytest.mark.parametrize("name", ["adamw", "sgd", "radam"])
def test_cpu_optimisers_are_unchanged(name) -> None:
    """The same steps as the pre-CUDA code path (timm's factory with the same groups and kwargs)."""
    config = TrainConfig(optimizer=name, lr=1e-2, weight_decay=0.05, momentum=0.9)
    ours, theirs = _model(), _model()
    kwargs = {"nesterov": True} if name == "sgd" else {"betas": (0.9, 0.999), "eps": 1e-8}
    before = create_optimizer_v2(param_groups(theirs, weight_decay=0.05), opt=name, lr=1e-2, momentum=0.9,
                                 **kwargs)
    after = build_optimizer(ours, config)
    assert type(after) is type(before)
    x = torch.randn(4, 3, 8, 8)
    for model, opt in ((ours, after), (theirs, before)):
        for _ in range(3):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_set_implementation_after_a_checkpoint_from_another_device() -> None:
    model = _model()
    opt = build_optimizer(model, TrainConfig(optimizer="adamw"))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = opt.state_dict()
    restored = build_optimizer(model, TrainConfig(optimizer="adamw"), device=CUDA)
    restored.load_state_dict(state)  # takes the checkpoint's flags: not fused
    assert not restored.param_groups[0]["fused"]
    set_implementation(restored, CUDA)
    assert all(g["fused"] is True for g in restored.param_groups)
    steps = [s["step"] for s in restored.state.values()]
    assert steps and all(s.dtype == torch.float32 and s.device == next(model.parameters()).device for s in steps)
    set_implementation(restored, "cpu")
    assert all(g["fused"] is None and g["foreach"] is None for g in restored.param_groups)
    radam = build_optimizer(model, TrainConfig(optimizer="radam"))
    set_implementation(radam, CUDA)
    assert all(g["foreach"] is True and "fused" not in g for g in radam.param_groups)
