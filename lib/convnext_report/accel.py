"""CUDA settings and ``torch.compile`` for training, with a fallback to eager.

A run on CUDA calls :func:`configure_cuda` once and wraps its modules with :func:`compile_model` (static
shapes: the training loader drops its partial last batch and :func:`convnext_report.engine.evaluate` pads
its own, so each mode compiles one graph). ``torch.compile`` is lazy: :class:`CompiledModule` guards the
first compiled call of each mode, and :func:`guard_first_step` the first training step (the backward graph
compiles there); a failure is logged on the run's log and the run continues eagerly, same parameters.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

import torch
from torch import nn

__all__ = [
    "CompiledModule", "compile_model", "configure_cuda", "describe", "guard_first_step", "is_compiled",
    "should_compile", "synchronize",
]

_log = logging.getLogger("convnext_report.run.accel")  # a child of the run logger: lands in log.txt
T = TypeVar("T")


def configure_cuda(device: torch.device | str) -> dict[str, Any]:
    """On CUDA: ``cudnn.benchmark`` and TF32 for fp32 matmuls and convolutions; what was set, for the record
    (``{}`` elsewhere)."""
    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cudnn.benchmark = True
    # one API only, the long-standing one: torch >= 2.9 refuses a mix of it and the per-backend
    # ``fp32_precision`` flags (and inductor reads them while compiling)
    try:
        torch.set_float32_matmul_precision("high")  # TF32 (or bf16x3) for fp32 matmuls
        if not torch.backends.cudnn.allow_tf32:  # TF32 for fp32 convolutions: torch's default
            torch.backends.cudnn.allow_tf32 = True
    except RuntimeError as err:  # the new API was used already: leave TF32 as it was set
        _log.warning("TF32 left as set elsewhere (%s)", _reason(err))
        return {"cudnn_benchmark": True}
    return {"cudnn_benchmark": True, "float32_matmul_precision": "high", "cudnn_allow_tf32": True}


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA); nothing elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def should_compile(enabled: bool | None, device: torch.device | str) -> bool:
    """The ``compile`` config key: ``None`` means compile on CUDA only."""
    return torch.device(device).type == "cuda" if enabled is None else bool(enabled)


def _reason(err: BaseException) -> str:
    """``Type: first line`` of the error's root cause (dynamo wraps a backend's error in its own)."""
    root, seen = err, {id(err)}
    while True:  # dynamo keeps the backend's error as ``inner_exception`` (or the cause)
        inner = getattr(root, "inner_exception", None) or root.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            break
        root = inner
        seen.add(id(inner))
    lines = [line for line in str(root).strip().splitlines() if line.strip()]
    prefix = type(err).__name__ + (f" <- {type(root).__name__}" if root is not err else "")
    return f"{prefix}: {lines[0][:300] if lines else '(no message)'}"


class CompiledModule(nn.Module):
    """``module`` run through its compiled twin (not a submodule: parameters, modes and ``state_dict`` under
    ``module.`` are ``module``'s), or eagerly for good once the first call of a mode has failed."""

    def __init__(self, module: nn.Module, compiled: Callable[..., Any], *, options: str = "") -> None:
        super().__init__()
        self.module = module
        self.__dict__["_compiled"] = compiled
        self.options = options
        self.fallback_reason: str | None = None  #: why it runs eagerly (None: still compiled)
        self.step_verified = False  #: a whole compiled training step (forward + backward) has run
        self._checked: set[tuple[bool, bool]] = set()

    @property
    def compiled(self) -> bool:
        return self.__dict__["_compiled"] is not None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        compiled = self.__dict__["_compiled"]
        if compiled is None:
            return self.module(*args, **kwargs)
        key = (self.module.training, torch.is_grad_enabled())
        if key in self._checked:
            return compiled(*args, **kwargs)
        try:
            out = compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any failure of the first compiled call
            self.fall_back(err)
            return self.module(*args, **kwargs)
        self._checked.add(key)
        return out

    def fall_back(self, err: BaseException) -> None:
        """Log why and run eagerly from now on."""
        self.fallback_reason = _reason(err)
        self.__dict__["_compiled"] = None
        _log.warning("torch.compile failed (%s); continuing without compilation", self.fallback_reason)

    def extra_repr(self) -> str:
        return f"compiled={self.compiled}, {self.options}" if self.compiled else f"eager: {self.fallback_reason}"


def compile_model(model: nn.Module, *, device: torch.device | str, enabled: bool | None = None,
                  mode: str | None = None, backend: str | Callable[..., Any] = "inductor") -> nn.Module:
    """``model`` in a :class:`CompiledModule` (``torch.compile``, static shapes, torch's ``mode``), or ``model``
    itself when :func:`should_compile` says no or ``torch.compile`` refuses at once (reason logged)."""
    if not should_compile(enabled, device):
        return model
    options = f"backend={getattr(backend, '__name__', backend)}, mode={mode or 'default'}, dynamic=False"
    try:
        compiled = torch.compile(model, mode=mode, backend=backend, dynamic=False)
    except Exception as err:  # noqa: BLE001 - e.g. an unsupported Python version
        _log.warning("torch.compile unavailable (%s); training without compilation", _reason(err))
        return model
    return CompiledModule(model, compiled, options=options)


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` still runs compiled (a :class:`CompiledModule` that has not fallen back)."""
    return isinstance(model, CompiledModule) and model.compiled


def describe(model: nn.Module) -> str:
    """One line for the log: compiled with which options, eager, or eager after a failed compile."""
    if isinstance(model, CompiledModule):
        return f"compiled ({model.options})" if model.compiled else f"eager (compile failed: {model.fallback_reason})"
    return "eager"


def guard_first_step(model: nn.Module, step: Callable[[], T], *, before_retry: Callable[[], None]) -> T:
    """``step()`` (one forward and backward); if ``model`` is compiled and no compiled step has
    finished yet, a failure makes it fall back to eager, then ``before_retry()`` (e.g. clear the
    gradients of the half-done step) and ``step()`` run again. Other failures propagate."""
    if not is_compiled(model) or model.step_verified:  # type: ignore[union-attr]
        return step()
    try:
        out = step()
    except Exception as err:  # noqa: BLE001 - e.g. the lazily compiled backward graph
        model.fall_back(err)  # type: ignore[union-attr]
        before_retry()
        return step()
    model.step_verified = is_compiled(model)  # type: ignore[union-attr]
    return out
