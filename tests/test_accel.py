"""accel: CUDA settings, compile on/off, the eager fallback of a failed compile (forward or backward)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from convnext_report import accel
from convnext_report.engine import train_one_epoch
from convnext_report.frozen import TensorLoader

CPU = torch.device("cpu")


@pytest.fixture
def cuda_flags():
    """Restore the global backend flags that configure_cuda sets."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


def test_configure_cuda_sets_the_flags_on_cuda_only(cuda_flags) -> None:
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    assert accel.configure_cuda(CPU) == {}
    assert not torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "highest"
    settings = accel.configure_cuda(torch.device("cuda"))  # sets flags only: no device needed
    assert settings == {"cudnn_benchmark": True, "float32_matmul_precision": "high", "cudnn_allow_tf32": True}
    assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("enabled, device, expected", [
    (None, "cuda", True), (None, "cpu", False), (True, "cpu", True), (False, "cuda", False), (None, "cuda:1", True),
])
def test_should_compile(enabled, device, expected) -> None:
    assert accel.should_compile(enabled, torch.device(device)) is expected


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4))


def test_compile_off_returns_the_model_itself() -> None:
    model = _net()
    assert accel.compile_model(model, device=CPU) is model  # None on CPU: no
    assert accel.compile_model(model, device=torch.device("cuda"), enabled=False) is model
    assert not accel.is_compiled(model) and accel.describe(model) == "eager"


def test_compiled_module_shares_parameters_and_modes() -> None:
    model = _net()
    wrapped = accel.compile_model(model, device=CPU, enabled=True, backend="eager")
    assert isinstance(wrapped, accel.CompiledModule) and accel.is_compiled(wrapped)
    assert list(wrapped.parameters()) == list(model.parameters())
    assert list(wrapped.state_dict()) == [f"module.{k}" for k in model.state_dict()]
    wrapped.eval()
    assert not model.training
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(wrapped(x), model(x))
    assert "compiled (backend=eager, mode=default, dynamic=False)" == accel.describe(wrapped)


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no kernel for you\nsecond line")


def test_a_failing_compile_falls_back_to_eager_with_a_logged_reason(caplog) -> None:
    model = _net()
    wrapped = accel.compile_model(model, device=CPU, enabled=True, backend=_failing_backend)
    x = torch.randn(2, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="convnext_report.run"):
        out = wrapped(x)
    assert torch.equal(out, model(x))
    assert not accel.is_compiled(wrapped) and "no kernel for you" in wrapped.fallback_reason
    assert "second line" not in wrapped.fallback_reason
    assert "torch.compile failed" in caplog.text and "no kernel for you" in caplog.text
    assert accel.describe(wrapped).startswith("eager (compile failed: ")


def test_torch_compile_refusing_at_once_leaves_the_model(monkeypatch, caplog) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("Python 3.99 is not supported")

    monkeypatch.setattr(torch, "compile", refuse)
    model = _net()
    with caplog.at_level(logging.WARNING, logger="convnext_report.run"):
        assert accel.compile_model(model, device=CPU, enabled=True) is model
    assert "Python 3.99" in caplog.text


def _backward_fails():
    """A backend whose forward compiles but whose backward graph cannot be compiled."""
    from torch._dynamo.backends.common import aot_autograd

    def fw(gm, example_inputs):
        return gm

    def bw(gm, example_inputs):
        raise RuntimeError("backward graph broke")

    return aot_autograd(fw_compiler=fw, bw_compiler=bw)


def _one_epoch(model: nn.Module, wrapped: nn.Module) -> dict:
    torch.manual_seed(1)
    x, y = torch.randn(32, 3, 8, 8), torch.arange(32) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_one_epoch(wrapped, TensorLoader(x, y, 8, shuffle=False, drop_last=False), opt, None,
                           criterion=nn.CrossEntropyLoss(), device=CPU, amp=False, progress=False)


def test_a_failing_first_step_falls_back_and_trains_like_eager(caplog) -> None:
    eager = _net()
    expected = _one_epoch(eager, eager)
    model = _net()
    wrapped = accel.compile_model(model, device=CPU, enabled=True, backend=_backward_fails())
    with caplog.at_level(logging.WARNING, logger="convnext_report.run"):
        stats = _one_epoch(model, wrapped)
    assert not accel.is_compiled(wrapped) and "backward graph broke" in wrapped.fallback_reason
    assert "backward graph broke" in caplog.text
    for a, b in zip(model.parameters(), eager.parameters()):  # the failed step was redone, not half-applied
        torch.testing.assert_close(a, b)
    assert stats["loss"] == pytest.approx(expected["loss"])


def test_a_compiled_model_trains_like_the_eager_one() -> None:
    eager = _net()
    _one_epoch(eager, eager)
    model = _net()
    wrapped = accel.compile_model(model, device=CPU, enabled=True, backend="aot_eager")
    _one_epoch(model, wrapped)
    assert accel.is_compiled(wrapped) and wrapped.step_verified
    for a, b in zip(model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, b)


def test_guard_passes_other_models_errors_through() -> None:
    def broken():
        raise ValueError("not a compile problem")

    with pytest.raises(ValueError, match="not a compile problem"):
        accel.guard_first_step(_net(), broken, before_retry=lambda: None)
