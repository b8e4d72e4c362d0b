"""Pretrained weights: hub offline error, local checkpoints, head skipping, stem resampling."""

from __future__ import annotations

import huggingface_hub.constants as hf_constants
import pytest
import torch
from safetensors.torch import save_file

from convnext_report.models import (
    CheckpointMismatchError,
    PretrainedWeightsUnavailable,
    UnreadableCheckpointError,
    build_model,
    load_pretrained,
)

SMALL = "convnextv2_atto"


@pytest.fixture
def offline_empty_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 and an empty HF_HOME (constants are read at import, so patch them too)."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def test_offline_hub_id_raises_with_instructions(offline_empty_hub):
    with pytest.raises(PretrainedWeightsUnavailable) as err, torch.device("meta"):
        build_model("convnext_tiny", 10, pretrained="convnext_tiny.fb_in1k")
    msg = str(err.value)
    assert "'convnext_tiny.fb_in1k'" in msg
    assert "https://huggingface.co/timm/convnext_tiny.fb_in1k" in msg
    assert "model.safetensors" in msg and "pretrained=" in msg
    assert str(offline_empty_hub) in msg  # names the (empty) cache it looked in
    # the failure came from huggingface_hub's download call, not from an early guard
    assert type(err.value.__cause__).__module__.startswith("huggingface_hub")


def test_hub_id_loads_from_the_local_cache_offline(offline_empty_hub, source_200):
    """A hub id whose file is in the HF cache loads offline (cache laid out as huggingface_hub does)."""
    repo = offline_empty_hub / "hub" / "models--timm--convnextv2_atto.fcmae_ft_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(source_200.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    model = build_model(SMALL, 10, stem_stride=4, pretrained="convnextv2_atto.fcmae_ft_in1k")
    assert model.pretrained_report["source"] == "timm:convnextv2_atto.fcmae_ft_in1k"
    assert torch.equal(model.stem[0].weight, source_200.stem[0].weight)


def test_unknown_hub_id_lists_valid_ids():
    with pytest.raises(ValueError, match="convnext_tiny.fb_in1k"), torch.device("meta"):
        build_model("convnext_tiny", 10, pretrained="convnext_tiny.no_such_tag")


def _save(state, path, fmt):
    if fmt == "pth":
        torch.save(state, path)
    elif fmt == "run":
        torch.save({"model": state, "optimizer": {"state": {}}, "epoch": 3, "best_top1": 0.5}, path)
    elif fmt == "ddp":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.fixture(scope="module")
def source_200() -> torch.nn.Module:
    """One 200-class model (linear head, stem stride 4) shared by the tests below."""
    torch.manual_seed(0)
    return build_model(SMALL, 200, stem_stride=4)


@pytest.fixture(scope="module")
def source_200_path(source_200, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "atto200.pth"
    torch.save(source_200.state_dict(), path)
    return path


@pytest.mark.parametrize("fmt", ["pth", "run", "ddp", "safetensors"])
def test_local_checkpoint_200_to_10_classes(tmp_path, fmt, source_200):
    source = source_200
    path = tmp_path / ("ckpt.safetensors" if fmt == "safetensors" else "ckpt.pt")
    _save(source.state_dict(), path, fmt)

    model = build_model(SMALL, 10, stem_stride=4, pretrained=str(path))
    report = model.pretrained_report
    assert set(report["skipped"]) == {"head.fc.weight", "head.fc.bias"}
    assert set(report["missing"]) == {"head.fc.weight", "head.fc.bias"}
    assert not report["unexpected"] and not report["mismatched"] and not report["resampled"]
    src = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("head.fc."):
            assert torch.equal(value, src[key]), key
    assert model.head.fc.out_features == 10


def test_stem_resampled_when_stride_differs(source_200_path):
    model = build_model(SMALL, 10, stem_stride=2, pretrained=str(source_200_path))
    report = model.pretrained_report
    assert report["resampled"] and "stem.0.weight" in report["resampled"][0]
    assert "(4, 4) -> (2, 2)" in report["resampled"][0] and report["notes"]
    assert model.stem[0].weight.shape == (40, 3, 2, 2)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_backbone_mismatch_lists_keys(tmp_path):
    path = tmp_path / "femto.pth"
    torch.save(build_model("convnextv2_femto", 10).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"stem\.0\.weight \(48, 3, 2, 2\) vs model \(40, 3, 2, 2\)"):
        build_model(SMALL, 10, pretrained=str(path))
    model = build_model(SMALL, 10)
    report = load_pretrained(model, path, strict_backbone=False)
    assert any(m.startswith("stem.0.weight ") for m in report["mismatched"])


def test_dyt_checkpoints(tmp_path, source_200, source_200_path):
    ln_model, ln_path, dyt_path = source_200, source_200_path, tmp_path / "dyt.pth"
    dyt_model = build_model(SMALL, 10, norm="dyt", dyt_alpha_init=0.3)
    with torch.no_grad():
        dyt_model.stem[1].alpha.fill_(1.7)
    torch.save(dyt_model.state_dict(), dyt_path)

    reloaded = build_model(SMALL, 10, norm="dyt", pretrained=str(dyt_path))
    assert reloaded.stem[1].alpha.item() == pytest.approx(1.7)
    # a LayerNorm checkpoint into a DyT model: load first, then convert
    converted = build_model(SMALL, 10, norm="dyt", stem_stride=4, pretrained=str(ln_path))
    assert torch.equal(converted.stem[0].weight, ln_model.stem[0].weight)
    assert any("DyT" in n for n in converted.pretrained_report["notes"])
    with pytest.raises(CheckpointMismatchError, match="DyT"):
        build_model(SMALL, 10, pretrained=str(dyt_path))


def test_attention_head_and_frozen_backbone_from_linear_checkpoint(source_200_path):
    model = build_model(SMALL, 200, head="attention", head_num_heads=4, pretrained=str(source_200_path),
                        freeze_backbone=True)
    report = model.pretrained_report
    assert {"head.norm.weight", "head.fc.weight"} <= set(report["loaded"])  # same shapes: loaded
    assert {"head.attn.qkv.weight", "head.attn.proj.weight"} <= set(report["missing"])
    assert all(p.requires_grad == n.startswith("head.") for n, p in model.named_parameters())


def test_missing_file_is_clear():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model(SMALL, 10, pretrained="/no/such/weights.pth")


class _Unsafe:
    """A class that a weights-only load refuses to unpickle."""


def _damaged(path, kind, source_200_path):
    """Write a ``kind`` of unreadable checkpoint at ``path``."""
    good = source_200_path.read_bytes()
    writers = {
        "yaml": lambda: path.write_text("lr: 0.1\nepochs: 2\n"),
        "empty": lambda: path.write_bytes(b""),
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
        "tensor": lambda: torch.save(torch.zeros(3), path),
        "unsafe": lambda: torch.save({"model": {"w": torch.zeros(1)}, "extra": _Unsafe()}, path),
        "not safetensors": lambda: path.write_bytes(b"garbage that is no safetensors header"),
    }
    writers[kind]()


@pytest.mark.parametrize("kind, says", [
    ("yaml", "it is not a torch or safetensors checkpoint (the file starts with b'lr: '"),
    ("empty", "the file is empty (0 bytes): copy it again"),
    ("truncated", "it is truncated"),
    ("tensor", "it does not hold a model state dict"),
    ("unsafe", "pickled Python objects"),
    ("not safetensors", "it is not a valid safetensors file"),
])
def test_an_unreadable_checkpoint_says_why(tmp_path, source_200_path, kind, says):
    path = tmp_path / ("w.safetensors" if kind == "not safetensors" else "w.pt")
    _damaged(path, kind, source_200_path)
    with pytest.raises(UnreadableCheckpointError) as err, torch.device("meta"):
        build_model(SMALL, 10, pretrained=str(path))
    message = str(err.value)
    assert message.startswith(f"pretrained={path} cannot be loaded: ") and says in message, message
    assert ("pickled" in message) == (kind == "unsafe")  # nobody is nudged towards weights_only=False for nothing
