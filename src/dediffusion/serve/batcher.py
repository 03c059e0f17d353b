"""Micro-batching: images from concurrent requests share one forward pass.

Requests put their images on a bounded asyncio queue and await one future per
image. A single consumer task takes the first waiting image, gathers more until
``max_batch`` are in hand or ``max_wait_s`` has passed since that first one, and
runs the batch function in the worker thread (off the event loop, which keeps
answering). Whatever the model was busy with meanwhile has queued up, so under
load batches fill without waiting; a lone request waits at most ``max_wait_s``.
A failing batch fails only its own futures; the consumer goes on.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

BatchFn = Callable[[torch.Tensor], list]  # (B,3,H,W) -> B results, run in the worker thread


class QueueFull(Exception):
    """More images are waiting than the queue holds: the caller answers 503."""


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0
    seconds: float = 0.0  # time in the batch function

    def as_dict(self) -> dict:
        mean = self.images / self.batches if self.batches else 0.0
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest,
                "mean_batch": round(mean, 2), "model_seconds": round(self.seconds, 3)}


class MicroBatcher:
    def __init__(self, fn: BatchFn, executor: Executor, max_batch: int, max_wait_s: float, max_queue: int):
        self.fn, self.executor = fn, executor
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue else 0

    def start(self) -> None:
        """Start the consumer on the running event loop (the app's lifespan)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="dediffusion-batcher")

    async def stop(self) -> None:
        """Finish every image already queued, then end the consumer."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, images: Sequence[torch.Tensor]) -> list:
        """Queue (3,H,W) images and wait for their results, in order; all are queued or none (QueueFull)."""
        if self._task is None:
            raise RuntimeError("the batcher is not running (start() it in the app's lifespan)")
        if self.waiting + len(images) > self.max_queue:
            raise QueueFull(f"{self.waiting} images are waiting (limit {self.max_queue}); try again shortly")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in images]
        for image, future in zip(images, futures):
            self._queue.put_nowait((image, future))
        return list(await asyncio.gather(*futures))

    async def _gather(self) -> list[tuple[torch.Tensor, asyncio.Future]]:
        items = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(items) < self.max_batch:
            if not self._queue.empty():
                items.append(self._queue.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return items

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            try:
                live = [(x, f) for x, f in items if not f.done()]  # a cancelled waiter needs no result
                if live:
                    await self._run(loop, live)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _run(self, loop, items) -> None:
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.fn, torch.stack([x for x, _ in items]))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} images")
        except Exception as e:  # this batch fails; the consumer lives on
            for _, future in items:
                if not future.done():
                    future.set_exception(e)
            return
        finally:
            self.stats.seconds += time.perf_counter() - start
        self.stats.batches += 1
        self.stats.images += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        for (_, future), result in zip(items, results):
            if not future.done():
                future.set_result(result)
