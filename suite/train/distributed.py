"""Multi-process training: detect a `torchrun` launch from the environment, set up the process group
(NCCL on CUDA, gloo on the CPU) and the few collectives the training loop needs.

A plain `suite train` (no torchrun) is a world of one and none of this talks to anything.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place in the job: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(environ: dict[str, str] | None = None) -> World:
    environ = os.environ if environ is None else environ
    try:
        size = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise RuntimeError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {err}") from None
    if size < 1 or not 0 <= rank < size:
        raise RuntimeError(f"malformed torchrun environment: RANK={rank}, WORLD_SIZE={size}")
    return World(rank=rank, local_rank=local_rank, size=size)


def init(world: World, device: torch.device) -> None:
    """Join the process group (a no-op for a world of one)."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend, rank=world.rank, world_size=world.size, timeout=datetime.timedelta(minutes=30)
    )


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_world(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over all processes (itself for a world of one)."""
    if not dist.is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_to_all(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (a one-item list for a world of one)."""
    if not dist.is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
