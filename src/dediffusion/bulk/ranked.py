"""Bulk encoding as several processes, started by torchrun like training (``distributed.py``).

    torchrun --standalone --nproc-per-node 2 -m dediffusion.cli encode photos/ shards/ --out captions.jsonl
    torchrun --standalone --nproc-per-node 8 -m dediffusion.cli encode shards/ --out c.jsonl --device cuda

Rank ``r`` of ``N`` takes items ``r, r + N, r + 2N, ...`` of the input stream
and appends its records to its own part file ``captions.rank{r}.jsonl`` with
the same flush + fsync per batch as one process (``bulk/stream.py``). When every rank
is done, rank 0 appends the part files' records to ``--out`` (in rank order)
and deletes them. Resuming: every rank skips the keys already in ``--out`` or
in any part file, so a killed run continues with any number of processes
(one included), and a run with nothing left to do merges what the parts hold.
On GPUs each rank uses ``cuda:LOCAL_RANK``.
"""
from __future__ import annotations

import pathlib
import re
from itertools import islice
from typing import Callable, Iterable

import torch

from dediffusion import distributed
from dediffusion.bulk.stream import JsonlSink, Summary, encode_stream, read_jsonl, repair_jsonl
from dediffusion.data.inputs import Loader


def part_path(out, rank: int) -> pathlib.Path:
    """``captions.jsonl`` -> ``captions.rank{rank}.jsonl`` beside it."""
    out = pathlib.Path(out)
    return out.with_name(f"{out.stem}.rank{rank}{out.suffix}")


def part_files(out) -> list[pathlib.Path]:
    """Existing part files of ``out``, in rank order."""
    out = pathlib.Path(out)
    pattern = re.compile(re.escape(out.stem) + r"\.rank(\d+)" + re.escape(out.suffix) + "$")
    found = [(int(m.group(1)), p) for p in out.parent.glob(f"{out.stem}.rank*{out.suffix}")
             if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def keys_in(path) -> set[str]:
    return {r["image"] for r in read_jsonl(path) if isinstance(r.get("image"), str)}


def merge_parts(out) -> int:
    """Append the records of ``out``'s part files that ``out`` lacks, then delete the parts; returns lines added.

    Safe to repeat after a kill: records already appended are skipped the next time.
    """
    out = pathlib.Path(out)
    sink = JsonlSink(out)
    added = 0
    for part in part_files(out):
        repair_jsonl(part)
        chunk = []
        for record in read_jsonl(part):
            key = record.get("image")
            if isinstance(key, str) and key not in sink.done:
                sink.done.add(key)
                chunk.append(record)
            if len(chunk) == 4096:
                sink.write(chunk)
                added, chunk = added + len(chunk), []
        if chunk:
            sink.write(chunk)
            added += len(chunk)
        part.unlink()
    return added


class OnDevice:
    """``texts(images)`` on the model's device (images arrive on the CPU)."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model.to(device), device

    def texts(self, images: torch.Tensor) -> list[str]:
        return self.model.texts(images.to(self.device))


def encode_ranked(model, items: Iterable[tuple[str, Loader]], out, batch_size: int, rank: int, world: int, *,
                  on_error: Callable[[str, str], None] | None = None, progress: bool | None = False) -> Summary:
    """This rank's share of ``items`` into its part file (``out`` itself when ``world == 1``).

    Keys already in ``out`` or in any part file count as done. Call ``merge_parts(out)`` in one
    process after every rank has returned.
    """
    sink = JsonlSink(out if world == 1 else part_path(out, rank))
    for path in [pathlib.Path(out), *part_files(out)]:
        if path != sink.path:
            sink.done |= keys_in(path)
    return encode_stream(model, islice(items, rank, None, world), sink, batch_size, on_error=on_error,
                         progress=progress)


def encode_command(model, items: Iterable[tuple[str, Loader]], out, batch_size: int, device: str, *,
                   on_error: Callable[[str, str], None] | None = None,
                   report: Callable[[str], None] = print) -> Summary:
    """The ``encode --out`` command in one process or as one of torchrun's: encode, wait for all, merge."""
    d = distributed.setup(device)
    summary = encode_ranked(OnDevice(model, d.device), items, out, batch_size, d.rank, d.world, on_error=on_error,
                            progress=None if d.main else False)
    report((f"rank {d.rank}: " if d.world > 1 else "") + summary.line("encoded"))
    if d.world > 1:
        torch.distributed.barrier()
    if d.main and part_files(out):
        report(f"merged {merge_parts(out)} record(s) from the part files into {out}")
    distributed.teardown(d)
    return summary
