"""One short CPU epoch of ConvNeXt-V2 atto (stem stride 2, 32 px) on real data learns something.

2,000 training images of 10 classes (chance 10%); test accuracy must be clearly above
chance (> 1.5x) on the full test split of those classes (Tiny-ImageNet-32: 500 images)
or a balanced 1,000-image part of it (CIFAR-10, whose full 10,000 take too long on 2 cores).
Batch 16 at lr 5e-4 without augmentation learns fastest per image (about 20-23% on
Tiny-ImageNet-32 and 30% on CIFAR-10 with seeds 0 and 1). One epoch selects nothing, so nothing is
held out (selection="test").
"""

from __future__ import annotations

import pytest

from convnext_report.config import TrainConfig
from convnext_report.training import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("dataset", "max_classes", "test_per_class"),
    [("tiny-imagenet-32", 10, None), ("cifar10", None, 100)],
    ids=["tiny-imagenet-32", "cifar10"],
)
def test_one_epoch_beats_chance(dataset, max_classes, test_per_class, data_root, tmp_path) -> None:
    config = TrainConfig(
        dataset=dataset, data_dir=str(data_root), max_classes=max_classes, train_per_class=200,
        test_per_class=test_per_class, crop_padding=0, hflip=False, model="convnextv2_atto", stem_stride=2,
        image_size=32, batch_size=16, lr=5e-4, warmup_epochs=0.1, epochs=1, drop_path_rate=0.0, selection="test",
        out_dir=str(tmp_path), run_name=dataset, progress=False, device="cpu",
    )
    run = train(config)
    print(f"{dataset}: test top1 {run.eval.top1:.3f} on {run.eval.num_images} images, "
          f"{run.history[0]['images_per_second']:.0f} train img/s")
    assert run.eval.num_classes == 10 and run.record["num_train_images"] == 2000
    assert run.eval.top1 > 1.5 / run.eval.num_classes
