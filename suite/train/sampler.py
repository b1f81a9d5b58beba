"""The order of training samples: a deterministic stream of global batches that any process can start
at any iteration, so a resumed run and every DDP rank see exactly the samples of an uninterrupted run.

The stream visits the `n` samples of epoch e in the order `permutation(seed, e)`; global batch t is
stream[t*B : (t+1)*B] and may straddle two epochs. Rank r of W takes the r-th contiguous slice of
B/W keys, so the union over ranks is the global batch a single process would take. A key `e*n + i`
names sample i of epoch e; `EpochKeyed` turns it into `TrainPatches.set_epoch(e)` + `[i]`, which
also works inside persistent DataLoader workers.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    mixed = int.from_bytes(hashlib.sha256(f"suite-sampler:{seed}:{epoch}".encode()).digest()[:8], "little")
    generator = torch.Generator().manual_seed(mixed & (2**63 - 1))
    return torch.randperm(n, generator=generator)


class GlobalBatchStream(Sampler[list[int]]):
    """Endless batches of sample keys for one process, starting at global batch `start`.

    n: samples per epoch; global_batch: B (a multiple of world_size); yields lists of B/W keys.
    """

    def __init__(
        self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> None:
        if n < 1:
            raise ValueError(f"an epoch needs at least one sample, got {n}")
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        self.local_batch = global_batch // world_size
        self._cached_epoch: int | None = None
        self._cached = torch.empty(0, dtype=torch.long)

    def position(self, batch: int) -> dict[str, int]:
        """Where global batch `batch` starts: epoch and sample offset inside it."""
        epoch, offset = divmod(batch * self.global_batch, self.n)
        return {"batch": batch, "epoch": epoch, "offset": offset}

    def keys(self, batch: int) -> list[int]:
        """The keys this process takes from global batch `batch`."""
        first = batch * self.global_batch + self.rank * self.local_batch
        keys = []
        for flat in range(first, first + self.local_batch):
            epoch, offset = divmod(flat, self.n)
            keys.append(epoch * self.n + int(self._permutation(epoch)[offset]))
        return keys

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._cached_epoch != epoch:
            self._cached = epoch_permutation(self.n, self.seed, epoch)
            self._cached_epoch = epoch
        return self._cached

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        while True:
            yield self.keys(batch)
            batch += 1


class EpochKeyed(Dataset):
    """`dataset[e*n + i]` -> sample i of epoch e of a dataset with `set_epoch` (e.g. TrainPatches)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.n = len(dataset)

    def __getitem__(self, key: int):
        epoch, index = divmod(key, self.n)
        self.dataset.set_epoch(epoch)
        return self.dataset[index]
