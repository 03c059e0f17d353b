"""Where training images come from: the embedded world, or image folders / WebDataset shards.

    dediffusion train --data photos/ --out runs/x                   # folders, walked recursively
    dediffusion train --data shards/*.tar --out runs/x              # WebDataset shards (shards.py)

The stream is a pure function of ``(data_seed, draw index)``: every epoch the
given paths are put in a seeded order (pass shards as a list to shuffle them),
folders are walked with each folder's files in name order, and a seeded shuffle
buffer (``data.shuffle_buffer`` items: keys and loaders, never pixels) mixes
them. Step ``s`` takes draws ``[s * batch_size, (s + 1) * batch_size)``; its
micro-batch ``part`` of ``parts`` the matching slice, so any process can load
its part without talking to the others (``distributed.py``). An image
that fails to load is reported once and replaced by another image of its
micro-batch, so the position never depends on which files were good, and
``--resume`` continues exactly: the stream is fast-forwarded through keys only
(no pixels read), at most three passes over the listing whatever the step.
Memory: the buffer, one folder's file names, and one micro-batch of images.
"""
from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from dediffusion.data.inputs import Loader
from dediffusion.data.images import ImageInputError
from dediffusion.data.shards import data_items
from dediffusion.data.world.batches import images_tensor, scenes


@dataclass(frozen=True)
class DataConfig:
    paths: tuple[str, ...] = ()  # image folders / files / WebDataset shards; empty: the embedded world
    shuffle_buffer: int = 10_000  # items (keys and loaders) mixed at a time
    workers: int = 0  # folders: threads decoding a micro-batch's images; world: processes rendering ahead (0: none)


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


class ShuffledStream:
    """Endless seeded stream of ``(key, loader)`` over epochs; ``draws`` counts what has been taken.

    ``open_epoch(paths_in_order)`` lists one epoch's items lazily; ``skip(n)`` advances without
    loading anything and, once one epoch's length is known, jumps whole epochs arithmetically.
    """

    def __init__(self, paths: tuple[str, ...], open_epoch: Callable[[list[str]], Iterator[tuple[str, Loader]]],
                 seed: int, buffer: int):
        if not paths:
            raise ValueError("no training data paths given")
        if buffer < 1:
            raise ValueError(f"shuffle_buffer must be at least 1, not {buffer}")
        self.paths, self.open_epoch, self.seed, self.buffer = list(paths), open_epoch, seed, buffer
        self.draws = 0
        self.epoch_length: int | None = None  # items per epoch, once one epoch has been drawn to its end
        self._start(0)

    def _start(self, epoch: int) -> None:
        self.epoch, self._in_epoch = epoch, 0
        rng = random.Random(epoch_seed(self.seed, epoch))
        order = list(self.paths)
        rng.shuffle(order)
        self._items = self._mix(self.open_epoch(order), rng)

    def _mix(self, items: Iterator[tuple[str, Loader]], rng: random.Random) -> Iterator[tuple[str, Loader]]:
        buf: list[tuple[str, Loader]] = []
        for item in items:
            if len(buf) < self.buffer:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            yield buf[j]
            buf[j] = item
        rng.shuffle(buf)
        yield from buf

    def next(self) -> tuple[str, Loader]:
        item = next(self._items, None)
        if item is None:  # the epoch is over: the next one (an empty one raises)
            if self._in_epoch == 0:
                raise ValueError(f"no images found in {', '.join(self.paths)}")
            self.epoch_length = self._in_epoch
            self._start(self.epoch + 1)
            return self.next()
        self.draws += 1
        self._in_epoch += 1
        return item

    def take(self, n: int) -> list[tuple[str, Loader]]:
        return [self.next() for _ in range(n)]

    def skip(self, n: int) -> None:
        """Advance ``n`` draws; nothing is loaded."""
        while n > 0:
            length = self.epoch_length
            if length and self._in_epoch + n >= length:  # the rest of this epoch and whole epochs: count only
                rest = length - self._in_epoch
                whole = (n - rest) // length
                self.draws += rest + whole * length
                n -= rest + whole * length
                self._start(self.epoch + 1 + whole)
                continue
            self.next()
            n -= 1


class FolderSource:
    """Training images from folders / shards: ``images(step, part, parts)`` as described above."""

    def __init__(self, cfg: DataConfig, batch_size: int, resolution: int, seed: int,
                 on_error: Callable[[str], None] | None = None):
        self.batch_size, self.resolution = batch_size, resolution
        self.stream = ShuffledStream(cfg.paths, lambda order: data_items(order, resolution, sort=True), seed,
                                     cfg.shuffle_buffer)
        self.on_error = on_error or _warn
        self.reported: set[str] = set()
        self.pool = ThreadPoolExecutor(cfg.workers) if cfg.workers > 0 else None
        self._step, self._batch = None, []

    def batch_items(self, step: int) -> list[tuple[str, Loader]]:
        """The global batch's ``(key, loader)`` of ``step``; steps go forwards (a resume jumps ahead)."""
        if self._step == step:
            return self._batch
        target = step * self.batch_size
        if self.stream.draws > target:
            raise ValueError(f"data stream is past step {step} (steps must not go backwards)")
        self.stream.skip(target - self.stream.draws)
        self._step, self._batch = step, self.stream.take(self.batch_size)
        return self._batch

    def images(self, step: int, part: int = 0, parts: int = 1) -> torch.Tensor:
        """Micro-batch ``part`` of ``parts`` of step ``step``: (B/parts, 3, R, R) in [0, 1]."""
        size = self.batch_size // parts
        items = self.batch_items(step)[part * size:(part + 1) * size]
        loaded = list(self.pool.map(_try_load, items) if self.pool else map(_try_load, items))
        good = [x for x in loaded if torch.is_tensor(x)]
        for (key, _), x in zip(items, loaded):
            if not torch.is_tensor(x) and key not in self.reported:
                self.reported.add(key)
                self.on_error(f"{x} (replaced by another image of its batch)")
        if not good:
            raise ValueError(f"step {step}: none of the {len(items)} images of micro-batch {part} could be "
                             f"loaded (first: {loaded[0]})")
        # a failed slot takes the next good image of the same micro-batch (cyclically): deterministic, local
        out = [x if torch.is_tensor(x) else _next_good(loaded, i) for i, x in enumerate(loaded)]
        return torch.stack(out)

    def keys(self, step: int, part: int = 0, parts: int = 1) -> list[str | None]:
        """What each image of ``images(step, part, parts)`` is (its file / shard key); None where a file
        failed to load and another image of the batch took its slot. Call after ``images``."""
        size = self.batch_size // parts
        items = self.batch_items(step)[part * size:(part + 1) * size]
        return [None if key in self.reported else key for key, _ in items]


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def check_resume_data(saved: dict, cfg: DataConfig) -> None:
    """``--resume`` must see the data the run was trained on, or the stream would not continue exactly."""
    paths, buffer = tuple(saved.get("paths", ())), saved.get("shuffle_buffer", cfg.shuffle_buffer)
    if paths != cfg.paths or (paths and buffer != cfg.shuffle_buffer):
        was = f"--data {' '.join(paths)} (shuffle_buffer {buffer})" if paths else "the embedded world (no --data)"
        raise ValueError(f"--resume: this run was trained on {was}; give the same data to continue it")


def _try_load(item: tuple[str, Loader]) -> torch.Tensor | str:
    try:
        return item[1]()
    except ImageInputError as e:
        return str(e)


def _next_good(loaded: list, i: int) -> torch.Tensor:
    n = len(loaded)
    return next(loaded[(i + k) % n] for k in range(1, n) if torch.is_tensor(loaded[(i + k) % n]))


class WorldSource:
    """The embedded world's scenes (the default): a pure function of (seed, step, part)."""

    def __init__(self, batch_size: int, resolution: int, seed: int):
        self.batch_size, self.resolution, self.seed = batch_size, resolution, seed

    def images(self, step: int, part: int = 0, parts: int = 1) -> torch.Tensor:
        size = self.batch_size // parts
        return images_tensor(scenes(self.seed, step * self.batch_size + part * size, size), self.resolution)

    def keys(self, step: int, part: int = 0, parts: int = 1) -> list[str]:
        """What each image of ``images(step, part, parts)`` is: scene (seed, index)."""
        size = self.batch_size // parts
        start = step * self.batch_size + part * size
        return [f"world/{self.seed}/{i}" for i in range(start, start + size)]


class _Steps(torch.utils.data.Dataset):
    """``make(step)`` for steps ``start, start + 1, ..., steps - 1``, for DataLoader workers."""

    def __init__(self, make: Callable[[int], object], start: int, steps: int):
        self.make, self.start, self.steps = make, start, steps

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)

    def __getitem__(self, i: int):
        return self.make(self.start + i)


class Prefetch:
    """``make(step)`` built ahead by ``workers`` DataLoader processes: ``prefetch(step)`` gives the same as
    ``make(step)``. Steps must be asked for in order from ``start`` (again, never backwards), as the
    training loop does; beside a GPU the batch building, not the model, is otherwise the bottleneck."""

    def __init__(self, make: Callable[[int], object], start: int, steps: int, workers: int):
        loader = torch.utils.data.DataLoader(_Steps(make, start, steps), batch_size=None, num_workers=workers,
                                             prefetch_factor=4)
        self._it, self._step, self._item = iter(loader), start - 1, None

    def __call__(self, step: int):
        while self._step < step:
            self._item, self._step = next(self._it), self._step + 1
        if self._step != step:
            raise ValueError(f"prefetched data is past step {step} (steps must not go backwards)")
        return self._item


class PrefetchWorldSource(WorldSource):
    """The embedded world rendered ahead by ``workers`` DataLoader processes (the same images as
    :class:`WorldSource`); steps in order from ``start``."""

    def __init__(self, batch_size: int, resolution: int, seed: int, workers: int, start: int, steps: int):
        super().__init__(batch_size, resolution, seed)
        self._batch = Prefetch(WorldSource(batch_size, resolution, seed).images, start, steps, workers)

    def images(self, step: int, part: int = 0, parts: int = 1) -> torch.Tensor:
        size = self.batch_size // parts
        return self._batch(step)[part * size:(part + 1) * size]  # of the global batch (B,3,R,R)


def make_source(cfg: DataConfig, batch_size: int, resolution: int, seed: int, start: int = 0, steps: int = 0):
    """Images by step. World scenes are rendered ahead by ``cfg.workers`` processes when given ``steps``."""
    if not cfg.paths:
        if cfg.workers and steps:
            return PrefetchWorldSource(batch_size, resolution, seed, cfg.workers, start, steps)
        return WorldSource(batch_size, resolution, seed)
    return FolderSource(cfg, batch_size, resolution, seed)
