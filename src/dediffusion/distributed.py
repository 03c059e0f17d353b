"""Multi-process training on torch.distributed: torchrun starts the processes, DDP averages the gradients.

    torchrun --standalone --nproc-per-node 8 -m dediffusion.cli train --out runs/x --set device=cuda

torchrun sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; each process joins the
group (NCCL on GPUs, gloo on CPU), wraps the model in
``DistributedDataParallel``, computes its share of every global batch, and
only rank 0 writes checkpoints. Without torchrun everything is one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this code started the process group and ends it

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "cpu") -> Dist:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, device=dev, owns_group=owns)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DDP around the model when there are several processes (frozen parts get no gradient buckets)."""
    if d.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def mean(value: float, d: Dist) -> float:
    """The mean of a scalar over all processes (for logging the global-batch loss)."""
    if d.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.item() / d.world


def teardown(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.barrier()  # rank 0 has finished writing before anyone leaves
        dist.destroy_process_group()
