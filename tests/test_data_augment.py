"""Batch transforms on CPU tensors: shapes, per-sample randomness, RandAugment semantics, seeds, devices.

Op-by-op equality with torchvision and the op/sync count live in test_augment_ops.py.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from convnext_report.data import (
    DATASETS,
    RandAugmentBatch,
    load_split,
    make_eval_transform,
    make_train_transform,
    parse_randaugment,
    random_crop,
    random_hflip,
)

SPEC = DATASETS["cifar10"]
ZERO_SAFE_OPS = [  # ops that are the identity at magnitude 0
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
    "Brightness", "Color", "Contrast", "Sharpness", "Posterize",
]
TORCHVISION_OPS = [
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
]


@pytest.fixture(scope="module")
def images(data_root) -> torch.Tensor:
    return load_split("cifar10", "test", data_dir=data_root, per_class=2, seed=0).images  # (20, 3, 32, 32)


def _same_image_batch(images: torch.Tensor, n: int) -> torch.Tensor:
    return images[:1].expand(n, -1, -1, -1).contiguous()


def test_train_and_eval_shapes_dtypes(images):
    train = make_train_transform(SPEC, 64, randaugment="n2m9")
    out = train(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == (20, 3, 64, 64) and out.dtype == torch.float32 and torch.isfinite(out).all()
    ev = make_eval_transform((SPEC.mean, SPEC.std), 32)
    mean, std = torch.tensor(SPEC.mean).view(1, 3, 1, 1), torch.tensor(SPEC.std).view(1, 3, 1, 1)
    torch.testing.assert_close(ev(images), (images.float() / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    assert make_eval_transform(SPEC, 224)(images[:2]).shape == (2, 3, 224, 224)
    assert not ev.is_train and train.is_train
    with pytest.raises(ValueError, match="uint8"):
        ev(images.float())


def test_transform_lives_on_one_device(images):
    """Constants are buffers that move with .to(device); a batch elsewhere is an error, not a silent copy."""
    tf = make_train_transform(SPEC, 32, randaugment="n2m9").to("meta")
    assert {b.device.type for b in tf.buffers()} == {"meta"}
    assert tf(torch.empty(4, 3, 32, 32, dtype=torch.uint8, device="meta")).device.type == "meta"
    with pytest.raises(ValueError, match="transform.to"):
        tf(images)


def test_randaugment_op_set_is_torchvision():
    assert RandAugmentBatch().ops == TORCHVISION_OPS
    assert RandAugmentBatch(ops=["Rotate"]).ops == ["Rotate"]
    with pytest.raises(ValueError, match="Invert"):
        RandAugmentBatch(ops=["Invert"])
    with pytest.raises(ValueError, match="magnitude"):
        RandAugmentBatch(magnitude=31)
    assert parse_randaugment("n2m9") == parse_randaugment("rand-m9-n2") == (2, 9)


def test_randaugment_differs_across_identical_images(images):
    batch = _same_image_batch(images, 32)
    out = RandAugmentBatch(2, 9)(batch, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 16  # ops are drawn per sample, not one op for the batch
    assert torch.equal(batch, _same_image_batch(images, 32))  # input untouched


def test_magnitude_zero_identity_ops_keep_image(images):
    ra = RandAugmentBatch(num_ops=3, magnitude=0, ops=ZERO_SAFE_OPS)
    assert torch.equal(ra(images, generator=torch.Generator().manual_seed(1)), images)
    assert torch.equal(RandAugmentBatch(num_ops=0)(images), images)


def test_rotate_matches_torchvision_with_random_sign(images):
    batch = _same_image_batch(images, 32)
    out = RandAugmentBatch(num_ops=1, magnitude=9, ops=["Rotate"])(batch, generator=torch.Generator().manual_seed(2))
    plus = TF.rotate(batch[:1], 9.0, InterpolationMode.NEAREST)
    minus = TF.rotate(batch[:1], -9.0, InterpolationMode.NEAREST)
    is_plus = (out == plus).flatten(1).all(1)
    is_minus = (out == minus).flatten(1).all(1)
    assert bool((is_plus | is_minus).all()) and is_plus.any() and is_minus.any()


def test_per_sample_flip(images):
    batch = _same_image_batch(images, 32)
    out = random_hflip(batch, torch.Generator().manual_seed(0))
    flipped = (out == batch.flip(-1)).flatten(1).all(1)
    kept = (out == batch).flatten(1).all(1)
    assert bool((flipped | kept).all()) and flipped.any() and kept.any()


def test_per_sample_crop(images):
    batch = _same_image_batch(images, 32)
    out = random_crop(batch, 4, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    padded = torch.nn.functional.pad(batch[0], (4, 4, 4, 4))
    windows = {(dy, dx): padded[:, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)}
    offsets = [next(k for k, w in windows.items() if torch.equal(w, o)) for o in out]
    assert len(set(offsets)) > 8  # each sample has its own offset
    assert random_crop(batch, 0) is batch


def test_deterministic_under_generator(images):
    tf = make_train_transform(SPEC, 32, randaugment="n2m9")
    a = tf(images, generator=torch.Generator().manual_seed(7))
    b = tf(images, generator=torch.Generator().manual_seed(7))
    c = tf(images, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
