"""AttentionPoolHead: shapes, timm head protocol, errors, dropout."""

from __future__ import annotations

import pytest
import torch

from convnext_report.complexity import count_macs
from convnext_report.models import AttentionPoolHead, build_model


def test_shapes_pre_logits_and_reset():
    head = AttentionPoolHead(64, 10, num_heads=8)
    x = torch.randn(3, 64, 4, 4)
    assert head(x).shape == (3, 10)
    assert head(x, pre_logits=True).shape == (3, 64)
    assert head(torch.randn(3, 64, 1, 1)).shape == (3, 10)  # a single token works
    head.reset(5)
    assert head(x).shape == (3, 5) and head.num_classes == 5
    head.reset(0)
    assert head(x).shape == (3, 64)
    with pytest.raises(ValueError, match="mean-pools"):
        head.reset(5, pool_type="max")


def test_output_is_invariant_to_token_order():
    torch.manual_seed(0)
    head = AttentionPoolHead(32, 4, num_heads=4).eval()
    x = torch.randn(2, 32, 3, 3)
    perm = torch.randperm(9)
    shuffled = x.flatten(2)[:, :, perm].reshape_as(x)
    assert torch.allclose(head(x), head(shuffled), atol=1e-5)


def test_num_heads_must_divide_channels():
    with pytest.raises(ValueError, match="must divide the final-stage width 64"):
        AttentionPoolHead(64, 10, num_heads=6)
    with pytest.raises(ValueError, match="320"):
        build_model("convnextv2_atto", 10, head="attention", head_num_heads=7)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    head = AttentionPoolHead(32, 4, num_heads=2, drop_rate=0.5)
    x = torch.randn(8, 32, 2, 2)
    head.train()
    a, b = head(x, pre_logits=True), head(x, pre_logits=True)
    assert not torch.allclose(a, b) and (a == 0).any()
    head.eval()
    assert torch.allclose(head(x), head(x))


def test_attention_head_in_model_trains_and_costs_macs():
    kw = dict(head="attention", head_num_heads=4, head_dropout=0.2, stem_stride=2)
    model = build_model("convnextv2_atto", 10, **kw)
    assert isinstance(model.head, AttentionPoolHead)
    assert model.head.drop.p == pytest.approx(0.2)
    model(torch.randn(2, 3, 32, 32)).logsumexp(-1).mean().backward()  # 2x2 = 4 tokens
    assert model.head.attn.qkv.weight.grad.abs().sum() > 0
    assert model.stem[0].weight.grad is not None
    with torch.device("meta"):
        attn, linear = build_model("convnextv2_atto", 10, **kw), build_model("convnextv2_atto", 10)
    assert count_macs(attn, 64) > count_macs(linear, 64)
