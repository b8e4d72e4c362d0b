"""DeviceLoader (and frozen.TensorLoader): batches, shuffling per epoch, DDP sharding, drop_last, max_steps."""

from __future__ import annotations

import pytest
import torch

from convnext_report.data import DATASETS, DeviceLoader, ImageTensors, make_train_transform
from convnext_report.frozen import TensorLoader


def _data(n: int) -> ImageTensors:
    labels = torch.arange(n)
    images = (labels % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()
    return ImageTensors(images, labels, [str(i) for i in range(n)], "synthetic", "train", "memory")


def _epoch(loader: DeviceLoader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


def test_batches_align_images_and_labels():
    loader = DeviceLoader(_data(50), 16, transform=None, shuffle=True, drop_last=False, device="cpu", seed=1)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    for x, y in batches:
        assert x.dtype == torch.uint8 and torch.equal(x[:, 0, 0, 0].long(), y % 256)
    assert sorted(_epoch(loader)) == list(range(50))


def test_second_epoch_reshuffles_and_seed_repeats():
    loader = DeviceLoader(_data(64), 8, transform=None, shuffle=True, drop_last=True, device="cpu", seed=0)
    e0 = _epoch(loader)
    assert e0 == _epoch(loader)  # same epoch, same order
    loader.set_epoch(1)
    e1 = _epoch(loader)
    assert e1 != e0 and sorted(e1) == sorted(e0) == list(range(64))
    plain = DeviceLoader(_data(64), 8, transform=None, shuffle=False, drop_last=True, device="cpu")
    assert _epoch(plain) == list(range(64))


@pytest.mark.parametrize("drop_last", [True, False])
def test_ddp_sharding_disjoint_equal(drop_last):
    n, world = 100, 3
    shards = []
    for rank in range(world):
        loader = DeviceLoader(_data(n), 5, transform=None, shuffle=True, drop_last=drop_last,
                              device="cpu", seed=4, rank=rank, world_size=world)
        loader.set_epoch(2)
        shards.append(loader.indices().tolist())
    sizes = {len(s) for s in shards}
    assert sizes == {33 if drop_last else 34}
    union = [i for s in shards for i in s]
    if drop_last:
        assert len(set(union)) == 99  # disjoint; one sample dropped
    else:
        assert set(union) == set(range(n)) and len(union) == 102  # padded by wrapping, like DistributedSampler
    assert not set(shards[0][:33]) & set(shards[1][:33])


def test_max_steps_and_len():
    loader = DeviceLoader(_data(100), 10, transform=None, shuffle=True, drop_last=True, device="cpu", max_steps=3)
    assert len(loader) == 3 and len(list(loader)) == 3
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(_data(10), 2, transform=None, shuffle=False, drop_last=False, device="cpu", rank=2, world_size=2)


def test_transform_applied_and_seeded():
    spec = DATASETS["cifar10"]
    data = _data(32)
    data.images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def run(seed: int, epoch: int) -> torch.Tensor:
        tf = make_train_transform(spec, 48, randaugment="n2m9")
        loader = DeviceLoader(data, 16, transform=tf, shuffle=True, drop_last=True, device="cpu", seed=seed)
        loader.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    a = run(0, 0)
    assert a.shape == (32, 3, 48, 48) and a.dtype == torch.float32
    assert torch.equal(a, run(0, 0)) and not torch.equal(a, run(0, 1))


@pytest.mark.parametrize("world,drop_last", [(1, False), (1, True), (3, False), (3, True)])
def test_device_and_tensor_loaders_agree(world, drop_last):
    """Both loaders take their order and shards from EpochSampler: same arguments, same batches."""
    n, kw = 53, dict(shuffle=True, drop_last=drop_last, seed=11, world_size=world, max_steps=None)
    for rank in range(world):
        device = DeviceLoader(_data(n), 8, transform=None, device="cpu", rank=rank, **kw)
        tensor = TensorLoader(torch.zeros(n, 4), torch.arange(n), 8, rank=rank, **kw)
        for epoch in (0, 1):
            device.set_epoch(epoch)
            tensor.set_epoch(epoch)
            assert len(device) == len(tensor)
            assert [y.tolist() for _, y in device] == [y.tolist() for _, y in tensor]


def test_transform_moved_to_loader_device():
    tf = make_train_transform(DATASETS["cifar10"], 8, randaugment="n2m9")
    loader = DeviceLoader(_data(4), 2, transform=tf, shuffle=False, drop_last=False, device="meta")
    assert loader.transform is tf and {b.device.type for b in tf.buffers()} == {"meta"}  # moved once, here
