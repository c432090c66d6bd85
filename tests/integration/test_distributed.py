"""gather_across_ranks: 2 CPU processes (gloo, loopback) train exactly as 1 process on the whole batch.

Each rank holds a different slice of one fixed float64 batch (unequal slice sizes on purpose)
and a copy of the same linear "model" ``W``. Per loss, each rank computes its loss with
``gather_across_ranks=True`` and backpropagates; the parameter gradient is then averaged over
ranks as DistributedDataParallel does. The test checks, against the single-process loss on the
concatenated batch (computed in the same worker with ``gather_across_ranks=False``):

* the per-rank losses averaged over ranks equal the single-process loss (1e-6, in fact ~1e-15);
* the rank-averaged gradient of ``W`` equals the single-process gradient;
* the gradient reaching each rank's own embedding slice is world_size x the single-process
  gradient of that slice (DDP's averaging divides it back), as documented in
  :mod:`losslab.distributed`.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from losslab import distributed
from losslab.functional import embedding as EF

WORLD = 2
TOL = 1e-6


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split(tensor: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
    start = sum(sizes[:rank])
    return tensor[start : start + sizes[rank]]


def _cases():
    """(name, make_inputs(g) -> full tensors, sizes per rank, loss(tensors, gather) -> loss)."""
    rows = [3, 5]  # unequal on purpose: gathering pads and trims
    speakers = [2, 3]

    def pair(g):
        return [torch.randn(8, 4, generator=g, dtype=torch.float64) for _ in range(2)]

    def triple(g):
        return [torch.randn(8, 4, generator=g, dtype=torch.float64) for _ in range(3)]

    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])  # positives and negatives across ranks

    return [
        ("info_nce", pair, rows, lambda t, g, r: EF.info_nce_loss(t[0], t[1], temperature=0.3, gather_across_ranks=g)),
        ("info_nce_symmetric", pair, rows,
         lambda t, g, r: EF.info_nce_loss(t[0], t[1], temperature=0.3, symmetric=True, gather_across_ranks=g)),
        ("info_nce_unpaired_negatives", triple, rows,
         lambda t, g, r: EF.info_nce_loss(t[0], t[1], t[2], temperature=0.3, gather_across_ranks=g)),
        ("nt_xent", pair, rows, lambda t, g, r: EF.nt_xent_loss(t[0], t[1], temperature=0.4, gather_across_ranks=g)),
        ("mnr", pair, rows, lambda t, g, r: EF.multiple_negatives_ranking_loss(t[0], t[1], gather_across_ranks=g)),
        ("mnr_negatives_symmetric", triple, rows,
         lambda t, g, r: EF.multiple_negatives_ranking_loss(t[0], t[1], t[2], symmetric=True, gather_across_ranks=g)),
        ("mnr_sum", pair, rows,
         lambda t, g, r: EF.multiple_negatives_ranking_loss(t[0], t[1], reduction="sum", gather_across_ranks=g)),
        ("batch_hard", lambda g: [torch.randn(8, 4, generator=g, dtype=torch.float64)], rows,
         lambda t, g, r: EF.batch_triplet_loss(t[0], _split(labels, rows, r) if g else labels, mining="hard",
                                               margin=2.0, gather_across_ranks=g)),
        ("batch_all", lambda g: [torch.randn(8, 4, generator=g, dtype=torch.float64)], rows,
         lambda t, g, r: EF.batch_triplet_loss(t[0], _split(labels, rows, r) if g else labels, mining="all",
                                               margin=2.0, gather_across_ranks=g)),
        ("ge2e_softmax", lambda g: [torch.randn(5, 3, 4, generator=g, dtype=torch.float64)], speakers,
         lambda t, g, r: EF.ge2e_loss(t[0], w=3.0, b=-1.0, gather_across_ranks=g)),
        ("ge2e_contrast", lambda g: [torch.randn(5, 3, 4, generator=g, dtype=torch.float64)], speakers,
         lambda t, g, r: EF.ge2e_loss(t[0], w=3.0, b=-1.0, variant="contrast", gather_across_ranks=g)),
    ]


def _worker(rank: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        assert distributed.world_size() == WORLD and distributed.rank() == rank
        for name, make, sizes, loss_fn in _cases():
            g = torch.Generator().manual_seed(1234)
            inputs = make(g)  # the same full batch on every rank
            weight0 = torch.randn(4, 3, generator=g, dtype=torch.float64)

            # single process, concatenated batch
            w_single = weight0.clone().requires_grad_(True)
            full = [x @ w_single for x in inputs]
            for e in full:
                e.retain_grad()
            single = loss_fn(full, False, rank)
            single.backward()

            # this rank's slice, gathered
            w_rank = weight0.clone().requires_grad_(True)
            local = [(_split(x, sizes, rank) @ w_rank) for x in inputs]
            for e in local:
                e.retain_grad()
            mine = loss_fn(local, True, rank)
            mine.backward()

            averaged_loss = mine.detach().clone()
            dist.all_reduce(averaged_loss)
            averaged_loss /= WORLD
            averaged_grad = w_rank.grad.clone()
            dist.all_reduce(averaged_grad)  # what DistributedDataParallel does
            averaged_grad /= WORLD

            torch.testing.assert_close(averaged_loss, single.detach(), rtol=0, atol=TOL, msg=name)
            torch.testing.assert_close(averaged_grad, w_single.grad, rtol=0, atol=TOL, msg=name)
            for e_full, e_local in zip(full, local):
                torch.testing.assert_close(
                    e_local.grad, WORLD * _split(e_full.grad, sizes, rank), rtol=0, atol=TOL, msg=name
                )
        # the bare gather: offsets and values
        x = torch.arange(rank + 2, dtype=torch.float64)[:, None].requires_grad_(True)
        gathered, offset = distributed.gather_across_ranks(x)
        assert gathered.shape == (5, 1) and offset == (0 if rank == 0 else 2)
        (gathered.square().sum()).backward()  # each rank's loss touches every slice
        torch.testing.assert_close(x.grad, WORLD * 2 * x.detach())
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
def test_gathered_losses_match_single_process_on_two_gloo_ranks():
    mp.spawn(_worker, args=(_free_port(),), nprocs=WORLD, join=True)


def test_gather_is_a_noop_without_process_group():
    assert not distributed.is_distributed()
    x = torch.randn(3, 2)
    gathered, offset = distributed.gather_across_ranks(x)
    assert gathered is x and offset == 0
    assert distributed.all_gather_with_grad(x) is x
    assert distributed.world_size() == 1 and distributed.rank() == 0
    a, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(
        EF.info_nce_loss(a, b, gather_across_ranks=True), EF.info_nce_loss(a, b), rtol=0, atol=0
    )
