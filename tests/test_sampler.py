"""EpochSampler: independent (seed, epoch) orders, DistributedSampler-style shards, batching."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from convnext_report.data import EpochSampler


def _order(n: int, seed: int, epoch: int, **kw) -> list[int]:
    s = EpochSampler(n, shuffle=True, seed=seed, **kw)
    s.set_epoch(epoch)
    return s.indices().tolist()


def test_same_seed_and_epoch_repeat_and_epochs_differ():
    assert _order(100, 3, 2) == _order(100, 3, 2)
    assert _order(100, 3, 2) != _order(100, 3, 1)
    assert sorted(_order(100, 3, 2)) == list(range(100))


@pytest.mark.parametrize("seed,epoch", [(0, 1), (1, 1), (5, 3), (41, 10)])
def test_seeds_are_independent(seed, epoch):
    """With ``seed + epoch`` seeding, seed s at epoch e would replay seed s+1 at epoch e-1."""
    assert _order(1000, seed, epoch) != _order(1000, seed + 1, epoch - 1)


@pytest.mark.parametrize("n,world", [(100, 3), (10, 4), (2, 5), (12, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_like_distributed_sampler(n, world, drop_last):
    """Without shuffling the shards are exactly DistributedSampler's (padding by wrap-around, or cut)."""
    ours = [EpochSampler(n, shuffle=False, rank=r, world_size=world, drop_last=drop_last).indices().tolist()
            for r in range(world)]
    theirs = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False, drop_last=drop_last))
              for r in range(world)]
    assert ours == theirs


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_shards_disjoint_equal_and_cover(drop_last):
    n, world = 100, 3
    shards = [_order(n, 4, 2, rank=r, world_size=world, drop_last=drop_last) for r in range(world)]
    per_rank = 33 if drop_last else 34
    assert {len(s) for s in shards} == {per_rank}
    heads = [set(s[:33]) for s in shards]
    assert not (heads[0] & heads[1] or heads[1] & heads[2] or heads[0] & heads[2])  # disjoint
    assert len(set().union(*map(set, shards))) == (99 if drop_last else 100)  # covers all unless cut
    if not drop_last:  # positions 100 and 101 (ranks 1 and 2) wrap around to the start of the order
        full = EpochSampler(n, shuffle=True, seed=4)
        full.set_epoch(2)
        assert [shards[1][-1], shards[2][-1]] == full.indices()[:2].tolist()


def test_batches_and_lengths():
    s = EpochSampler(50, shuffle=True, seed=1)
    assert len(s) == 50 and list(s) == s.indices().tolist()
    assert s.num_batches(16, drop_last=False) == 4 and s.num_batches(16, drop_last=True) == 3
    batches = list(s.batches(16, drop_last=False))
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert torch.cat(batches).tolist() == s.indices().tolist()
    assert [len(b) for b in s.batches(16, drop_last=True)] == [16, 16, 16]
    assert EpochSampler(0, shuffle=True).indices().tolist() == []


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(10, shuffle=False, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        EpochSampler(10, shuffle=False).num_batches(0, drop_last=False)
