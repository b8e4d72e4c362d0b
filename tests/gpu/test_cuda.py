"""The CUDA path, on a GPU only: bf16 steps, compile and its fallback, channels_last, the frozen
fast path, resume, DDP over NCCL and a short ``training.train`` on CIFAR-100.

Skipped (with the reason) where ``torch.cuda.is_available()`` is False. Run on a GPU machine with
``PYTHONPATH=lib:/tmp/site python3 -m pytest tests/gpu -q`` (``/tmp/site``: the carried timm wheel, as
the README says) and ``CONVNEXT_REPORT_DATA`` pointing at a folder
holding ``cifar100/`` (see ../shared/data/README.md); about two minutes on an H100, most of it
``torch.compile``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from convnext_report import accel
from convnext_report.config import TrainConfig
from convnext_report.engine import evaluate, train_one_epoch
from convnext_report.frozen import TensorLoader
from convnext_report.models import DynamicTanh, build_model
from convnext_report.models.grn import GlobalResponseNorm
from convnext_report.optim import build_optimizer
from convnext_report.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False here")

CUDA = torch.device("cuda")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_compiler():
    """Each test compiles its own models (no recompile limit shared across tests)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def cifar_root() -> Path:
    env = os.environ.get("CONVNEXT_REPORT_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not (root / "cifar100").is_dir():
        pytest.fail(f"CIFAR-100 not found under {root}: set CONVNEXT_REPORT_DATA to a folder holding cifar100/")
    return root


def _atto(norm: str = "layernorm") -> nn.Module:
    torch.manual_seed(0)
    model = build_model("convnextv2_atto", 10, stem_stride=2, norm=norm, drop_path_rate=0.0).to(CUDA)
    return model.to(memory_format=torch.channels_last)


def _loader(n: int = 256, batch: int = 64, shuffle: bool = False) -> TensorLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10
    return TensorLoader(x.to(CUDA), y.to(CUDA), batch, shuffle=shuffle, drop_last=False)


def _epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: TensorLoader, **kw) -> dict:
    return train_one_epoch(model, loader, optimizer, None, criterion=nn.CrossEntropyLoss(), device=CUDA, amp=True,
                           channels_last=True, progress=False, **kw)


def test_bf16_step_stays_bf16_with_a_fused_optimiser() -> None:
    settings = accel.configure_cuda(CUDA)
    assert settings and torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
    model = _atto(norm="dyt")
    dtypes: dict[str, torch.dtype] = {}
    for name, module in model.named_modules():
        if isinstance(module, (DynamicTanh, GlobalResponseNorm)):
            module.register_forward_hook(lambda m, i, o, n=name: dtypes.__setitem__(n, (i[0].dtype, o.dtype)))
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw"))
    assert all(g["fused"] is True for g in optimizer.param_groups)
    stats = _epoch(model, optimizer, _loader())
    assert torch.isfinite(torch.tensor([stats["loss"], stats["grad_norm"], stats["grad_norm_max"]])).all()
    assert stats["grad_norm"] > 0 and stats["grad_norm_max"] >= stats["grad_norm"]
    grn = [io for n, io in dtypes.items() if ".grn" in n]
    assert grn and all(o == torch.bfloat16 for _, o in grn)  # timm's GRN would return fp32 here
    assert not [n for n, (i, o) in dtypes.items() if i == torch.bfloat16 and o != torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for name in ("sgd", "radam"):  # the other optimisers construct and step on CUDA
        opt = build_optimizer(model, TrainConfig(optimizer=name))
        assert torch.isfinite(torch.tensor(_epoch(model, opt, _loader(128))["loss"]))


def test_compiled_training_matches_eager_and_evaluation_does_not_recompile() -> None:
    eager, model = _atto(), _atto()
    compiled = accel.compile_model(model, device=CUDA)  # compile=None: on CUDA, yes
    assert accel.is_compiled(compiled)
    opt_e, opt_c = build_optimizer(eager, TrainConfig()), build_optimizer(model, TrainConfig())
    loader = _loader(n=320)
    se = _epoch(eager, opt_e, loader, time_first_step=True)
    sc = _epoch(compiled, opt_c, loader, time_first_step=True)
    assert accel.is_compiled(compiled) and compiled.step_verified, accel.describe(compiled)
    assert sc["first_step_seconds"] > se["first_step_seconds"]  # the compile is in the first step only
    assert sc["loss"] == pytest.approx(se["loss"], rel=0.05) and sc["images_per_second"] > 0
    batches = _loader(n=150, batch=64)  # a partial last batch of 22: padded to 64
    first = evaluate(compiled, batches, device=CUDA, num_classes=10, channels_last=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = evaluate(compiled, batches, device=CUDA, num_classes=10, channels_last=True)
    assert first.num_images == second.num_images == 150 and (first.predictions == second.predictions).all()
    reference = evaluate(model, batches, device=CUDA, num_classes=10, channels_last=True)  # eager, not padded
    assert (reference.predictions == first.predictions).mean() > 0.9  # bf16: near-ties may flip


def test_a_failing_compile_falls_back_on_cuda(caplog) -> None:
    def broken(gm, example_inputs):
        raise RuntimeError("no Triton today")

    model = _atto()
    wrapped = accel.compile_model(model, device=CUDA, backend=broken)
    with caplog.at_level(logging.WARNING, logger="convnext_report.run"):
        stats = _epoch(wrapped, build_optimizer(model, TrainConfig()), _loader())
    assert not accel.is_compiled(wrapped) and "no Triton today" in caplog.text
    assert torch.isfinite(torch.tensor(stats["loss"]))


def test_channels_last_runs_channels_last_and_matches_nchw() -> None:
    model = _atto().eval()
    formats = []
    model.stem[0].register_forward_hook(  # the stem convolution's output keeps its input's layout
        lambda m, i, o: formats.append(o.is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(8, 3, 32, 32, device=CUDA)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        fast = model(x.contiguous(memory_format=torch.channels_last)).float()
        plain = model.to(memory_format=torch.contiguous_format)(x).float()
    assert formats[0]  # channels_last in, channels_last out (the eager NCHW twin may pick either)
    torch.testing.assert_close(fast, plain, rtol=0.05, atol=0.05)


def _config(root: Path, tmp_path: Path, **kw) -> TrainConfig:
    base = dict(dataset="cifar100", data_dir=str(root), max_classes=10, train_per_class=40, test_per_class=10,
                model="convnextv2_atto", stem_stride=2, batch_size=100, epochs=2, device="cuda",
                out_dir=str(tmp_path), progress=False, selection="test")
    return TrainConfig(**{**base, **kw})


def test_frozen_fast_path_on_cuda(cifar_root, tmp_path) -> None:
    config = _config(cifar_root, tmp_path, run_name="frozen", freeze_backbone=True, randaugment=None,
                     crop_padding=0, hflip=False, compile=False)
    run = train(config)
    assert run.record["frozen_feature_fast_path"] is True and run.record["status"] == "finished"
    assert "cuda" in run.record["device"]


class _Killed(RuntimeError):
    pass


def test_resume_on_cuda_keeps_the_fused_optimiser(cifar_root, tmp_path) -> None:
    config = _config(cifar_root, tmp_path, run_name="resume", compile=False)

    def kill_after_first_epoch(row: dict) -> None:
        if row["epoch"] == 1:
            raise _Killed("simulated kill")

    with pytest.raises(_Killed):
        train(config, on_epoch_end=kill_after_first_epoch)
    ckpt = torch.load(tmp_path / "resume" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and all(g["fused"] is True for g in ckpt["optimizer"]["param_groups"])
    run = train(config.replace(resume=True))
    assert len(run.history) == 2 and run.record["sessions"] == 2 and run.record["status"] == "finished"
    assert all(row["train_loss"] == row["train_loss"] for row in run.history)  # finite after the resume


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_over_nccl_with_one_process(monkeypatch) -> None:
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0",
                       "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    torch.cuda.set_device(CUDA)
    dist.init_process_group("nccl", init_method="env://")
    try:
        total = torch.ones(1, device=CUDA)
        dist.all_reduce(total)
        assert total.item() == 1.0 and dist.get_backend() == "nccl"
        model = _atto()
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[CUDA.index or 0])
        stats = _epoch(ddp, build_optimizer(model, TrainConfig()), _loader())
        assert torch.isfinite(torch.tensor([stats["loss"], stats["grad_norm"]])).all()
    finally:
        dist.destroy_process_group()


def test_a_short_training_run_on_cifar100(cifar_root, tmp_path) -> None:
    """The book's default path on CUDA (compile as the config's default says, RandAugment, bf16)."""
    run = train(_config(cifar_root, tmp_path, run_name="short", randaugment="n2m9", max_classes=20,
                        train_per_class=50))
    assert run.record["status"] == "finished" and "cuda" in run.record["device"]
    assert len(run.history) == 2 and all(row["train_loss"] == row["train_loss"] for row in run.history)
    assert run.history[-1]["images_per_second"] > 0 and 0.0 <= run.best["selection_acc"] <= 1.0
