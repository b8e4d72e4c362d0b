"""train_one_epoch / evaluate on a tiny synthetic task, EvalResult and the sample picks."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convnext_report.config import TrainConfig
from convnext_report.engine import CHECK_EVERY, NonFiniteLossError, _set_train_mode, evaluate, train_one_epoch
from convnext_report.evaluation import EvalResult, first_classes, pick_samples
from convnext_report.frozen import TensorLoader
from convnext_report.optim import build_scheduler, param_groups

CPU = torch.device("cpu")


def _task(n: int = 256, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the brightest colour channel-quadrant: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.3
    for c in range(classes):
        x[labels == c, c % 3, : 4 * (c // 3 + 1)] += 1.5
    return x, labels


class Tiny(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x).mean(dim=(2, 3)))


def _setup(lr: float = 1e-2, epochs: int = 3):
    torch.manual_seed(0)
    model = Tiny()
    x, y = _task()
    loader = TensorLoader(x, y, 32, shuffle=True, drop_last=False)
    config = TrainConfig(lr=lr, epochs=epochs, warmup_epochs=1)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.0), lr=lr)
    return model, loader, opt, build_scheduler(opt, config, len(loader))


def test_train_one_epoch_learns_and_steps_the_schedule_per_iteration() -> None:
    model, loader, opt, sched = _setup()
    seen_lrs = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        stats = train_one_epoch(model, loader, opt, sched, criterion=nn.CrossEntropyLoss(), device=CPU,
                                amp=True, epoch=epoch, progress=False, grad_clip=1.0)
        seen_lrs.append(stats["lr"])
    assert set(stats) == {"loss", "acc", "seconds", "images_per_second", "lr", "grad_norm", "grad_norm_max"}
    assert stats["acc"] > 0.6 and stats["images_per_second"] > 0
    assert seen_lrs[0] == pytest.approx(1e-2 * 7 / 8)  # 8 warmup steps: the last step of epoch 0 ran at 7/8 lr
    assert seen_lrs[1] > seen_lrs[2]  # then cosine decay
    result = evaluate(model, loader, device=CPU, amp=True, num_classes=4)
    assert result.top1 > 0.6 and result.num_images == 256


def test_non_finite_loss_names_epoch_and_step() -> None:
    model, loader, opt, sched = _setup()

    class NaNAfter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            loss = nn.functional.cross_entropy(logits, target)
            return loss * float("nan") if self.calls == 3 else loss

    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 3, step 3/8.*learning rate.*grad_clip"):
        train_one_epoch(model, loader, opt, sched, criterion=NaNAfter(), device=CPU, amp=False, epoch=2,
                        progress=False)


def test_mixup_with_soft_targets() -> None:
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    model, loader, opt, sched = _setup()
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
    stats = train_one_epoch(model, loader, opt, sched, criterion=SoftTargetCrossEntropy(), device=CPU, amp=True,
                            mixup_fn=mixup, epoch=0, progress=False)
    assert np.isfinite(stats["loss"])


def test_frozen_submodules_stay_in_eval_mode() -> None:
    model = Tiny()
    for p in model.stem.parameters():
        p.requires_grad_(False)
    _set_train_mode(model)
    assert model.training and model.head.training
    assert not model.stem.training and not model.stem[2].training  # dropout of the frozen part is off


def _result() -> EvalResult:
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    preds = np.array([0, 1, 1, 1, 2, 0, 0, 3])
    top = np.stack([preds, (preds + 1) % 4, (preds + 2) % 4, (preds + 3) % 4], axis=1)
    return EvalResult(labels=labels, predictions=preds, top5_predictions=top, confidence=np.linspace(0.3, 1, 8),
                      loss=1.25, class_names=["a", "b", "c", "d"])


def test_eval_result_metrics_and_files(tmp_path) -> None:
    r = _result()
    assert r.top1 == pytest.approx(5 / 8) and r.top5 == 1.0  # 4 classes: top-4 covers all
    assert r.per_class_accuracy.tolist() == [0.5, 1.0, 0.5, 0.5]
    cm = r.confusion_matrix
    assert cm.sum() == 8 and cm[0, 1] == 1 and cm[3, 0] == 1 and np.trace(cm) == 5
    r.save(tmp_path)
    back = EvalResult.load(tmp_path)
    assert back.top1 == r.top1 and back.class_names == r.class_names
    np.testing.assert_array_equal(back.confusion_matrix, cm)
    assert {"top1", "top5", "loss", "per_class_accuracy", "class_names"} <= set(r.summary())


def test_eval_files_are_compact(tmp_path) -> None:
    r = _result()
    r.split_rows = np.arange(8) + 40_000
    r.save(tmp_path)
    with np.load(tmp_path / "eval.npz") as z:
        assert "confusion_matrix" not in z.files
        assert z["labels"].dtype == z["top5_predictions"].dtype == z["indices"].dtype == np.uint8
        assert z["split_rows"].dtype == np.uint16 and z["confidence"].dtype == np.float16
    back = EvalResult.load(tmp_path)
    assert back.labels.dtype == np.int64 and back.split_rows.tolist() == r.split_rows.tolist()
    np.testing.assert_allclose(back.confidence, r.confidence, atol=1e-3)


def test_eval_load_reads_the_older_int64_files(tmp_path) -> None:
    r = _result()
    r.save(tmp_path)
    np.savez_compressed(tmp_path / "eval.npz", labels=r.labels, predictions=r.predictions,
                        top5_predictions=r.top5_predictions, confidence=r.confidence, indices=r.indices,
                        confusion_matrix=r.confusion_matrix)
    back = EvalResult.load(tmp_path)
    np.testing.assert_array_equal(back.confusion_matrix, r.confusion_matrix)
    assert back.split_rows is None and back.top1 == r.top1


def test_pick_samples_and_first_classes() -> None:
    r = _result()
    picks = pick_samples(r, n_correct=3, n_wrong=8, seed=1)
    assert picks["correct"].tolist() == [True] * 3 + [False] * 3  # only 3 wrong ones exist
    assert len(set(picks["index"])) == 6
    assert picks.equals(pick_samples(r, n_correct=3, n_wrong=8, seed=1))
    first = first_classes(r, k=16)
    assert first["label"].tolist() == [0, 1, 2, 3] and first["index"].tolist() == [0, 2, 4, 6]
    assert first["prediction_name"].tolist() == ["a", "b", "c", "a"]


def test_evaluate_top5_and_loss_match_manual() -> None:
    torch.manual_seed(0)
    model = Tiny(classes=7).eval()
    x, y = _task(64, classes=7)
    result = evaluate(model, TensorLoader(x, y, 20, shuffle=False, drop_last=False), device=CPU, amp=False,
                      num_classes=7)
    with torch.no_grad():
        logits = model(x)
    assert result.loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result.top5 == pytest.approx((logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item())
    np.testing.assert_array_equal(result.predictions, logits.argmax(1).numpy())


def _still(model: nn.Module) -> nn.Module:
    """No dropout: a step's gradients depend on the batch only."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def _manual_norms(model: nn.Module, loader) -> list[float]:
    norms = []
    for images, labels in loader:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        norms.append(torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item())
    return norms


@pytest.mark.parametrize("grad_clip", [None, 1e-3])
def test_grad_norm_is_the_mean_and_max_before_clipping(grad_clip) -> None:
    torch.manual_seed(0)
    model = _still(Tiny())
    x, y = _task(96)
    loader = TensorLoader(x, y, 32, shuffle=False, drop_last=False)
    expected = _manual_norms(model, loader)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # weights stay: every step sees the same model
    stats = train_one_epoch(model, loader, opt, None, criterion=nn.CrossEntropyLoss(), device=CPU, amp=False,
                            progress=False, grad_clip=grad_clip)
    assert stats["grad_norm"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert stats["grad_norm_max"] == pytest.approx(max(expected), rel=1e-5)
    assert len(set(np.round(expected, 6))) == 3  # the batches differ: mean and max are different numbers
    off = train_one_epoch(model, loader, opt, None, criterion=nn.CrossEntropyLoss(), device=CPU, amp=False,
                          progress=False, grad_norm=False)
    assert off["grad_norm"] is None and off["grad_norm_max"] is None


class _SlowFirst:
    """A loader whose first batch takes ``delay`` seconds (like a step that compiles)."""

    def __init__(self, loader, delay: float) -> None:
        self.loader, self.delay = loader, delay

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == 0:
                time.sleep(self.delay)
            yield batch


def test_first_step_is_timed_apart_from_images_per_second() -> None:
    model, loader, opt, sched = _setup()
    slow = _SlowFirst(loader, 0.5)
    stats = train_one_epoch(model, slow, opt, sched, criterion=nn.CrossEntropyLoss(), device=CPU, amp=False,
                            progress=False, time_first_step=True)
    assert stats["first_step_seconds"] >= 0.5
    after_first = 256 - 32
    assert stats["images_per_second"] == pytest.approx(after_first / (stats["seconds"] - stats["first_step_seconds"]),
                                                       rel=1e-6)
    assert stats["images_per_second"] > 256 / stats["seconds"]  # the slow first step is not in it
    plain = train_one_epoch(model, slow, opt, sched, criterion=nn.CrossEntropyLoss(), device=CPU, amp=False,
                            progress=False)
    assert "first_step_seconds" not in plain
    assert plain["images_per_second"] == pytest.approx(256 / plain["seconds"], rel=1e-6)


_ENGINE = str(Path(__file__).resolve().parents[1] / "lib" / "convnext_report" / "engine.py")


def test_steps_do_not_wait_for_the_device(monkeypatch) -> None:
    """Only the NaN check every CHECK_EVERY steps and the epoch's closing transfer read tensors on the host."""
    model, _, opt, _ = _setup()
    x, y = _task(2 * (2 * CHECK_EVERY + 5))
    loader = TensorLoader(x, y, 2, shuffle=False, drop_last=False)  # 2 * CHECK_EVERY + 5 steps
    calls: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if Path(caller).resolve() == Path(_ENGINE).resolve():
                calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    train_one_epoch(model, loader, opt, None, criterion=nn.CrossEntropyLoss(), device=CPU, amp=False,
                    progress=False, grad_clip=1.0)
    assert calls == ["tolist"] * 4  # checks after steps 20, 40, 45 and the closing transfer


class _Recorder(nn.Module):
    """Per-sample model that records the batch sizes it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _still(Tiny(classes=7))
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.inner(x)


def test_evaluate_pads_the_last_batch_exactly() -> None:
    torch.manual_seed(0)
    model = _Recorder()
    x, y = _task(10, classes=7)
    loader = TensorLoader(x, y, 4, shuffle=False, drop_last=False)
    padded = evaluate(model, loader, device=CPU, amp=False, num_classes=7, pad_last=True)
    assert model.sizes == [4, 4, 4]
    model.sizes.clear()
    plain = evaluate(model, loader, device=CPU, amp=False, num_classes=7)  # an eager model: no padding
    assert model.sizes == [4, 4, 2]
    assert padded.num_images == plain.num_images == 10
    np.testing.assert_array_equal(padded.top5_predictions, plain.top5_predictions)
    np.testing.assert_allclose(padded.confidence, plain.confidence, rtol=1e-6)
    assert padded.loss == pytest.approx(plain.loss, rel=1e-6)


def test_evaluate_progress_bar(capsys) -> None:
    model, loader, _, _ = _setup()
    evaluate(model, loader, device=CPU, amp=False, num_classes=4, progress=True)
    assert "eval" in capsys.readouterr().err
    evaluate(model, loader, device=CPU, amp=False, num_classes=4)
    assert "eval" not in capsys.readouterr().err
