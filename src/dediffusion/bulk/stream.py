"""Streaming encoding of any number of images into JSONL that survives being killed.

``encode_stream(model, items, "captions.jsonl")`` reads images a batch at a
time (memory does not grow with the number of images), appends one line
``{"image": key, "text": ...}`` per image, and flushes and fsyncs after every
batch. Rerunning the same command resumes: keys already in the file are
skipped. A run killed in the middle of a write leaves at most one partial last
line; it is cut off before anything is appended, and ``read_jsonl`` ignores it.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from dediffusion.data.images import ImageInputError, display_path
from dediffusion.data.inputs import Loader

@dataclass
class Summary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output (resumed)

    def line(self, verb: str = "encoded") -> str:
        text = f"{verb} {self.ok} image(s), {self.failed} failed"
        return text + (f", {self.skipped} already done (skipped)" if self.skipped else "")


def batches(items: Iterable[tuple[str, Loader]], batch_size: int, summary: Summary,
            on_error: Callable[[str, str], None], skip: Callable[[str], bool] = lambda key: False
            ) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Load items lazily into ``(keys, images (B,3,R,R))`` batches; bad items go to ``on_error``."""
    keys, images = [], []
    for key, load in items:
        if skip(key):
            summary.skipped += 1
            continue
        try:
            images.append(load())
        except ImageInputError as e:
            summary.failed += 1
            on_error(key, str(e))
            continue
        keys.append(key)
        if len(keys) == batch_size:
            yield keys, torch.stack(images)
            keys, images = [], []
    if keys:
        yield keys, torch.stack(images)


class JsonlSink:
    """Append-only JSONL of ``{"image", "text"}`` records with a flush + fsync per batch."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(self.path)
        self.done = {r["image"] for r in read_jsonl(self.path) if isinstance(r.get("image"), str)}

    def write(self, records: list[dict]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records).encode("ascii")
        with open(self.path, "ab") as f:  # one write per batch: a kill tears at most the last line
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


class StreamSink:
    """Records to a text stream (stdout), as JSONL or ``key<TAB>text`` lines; nothing to resume."""

    def __init__(self, stream=None, fmt: str = "jsonl"):
        self.stream, self.fmt, self.done = stream or sys.stdout, fmt, set()

    def write(self, records: list[dict]) -> None:
        for r in records:
            line = json.dumps(r, ensure_ascii=True) if self.fmt == "jsonl" else f"{display_path(r['image'])}\t{r['text']}"
            self.stream.write(line + "\n")
        self.stream.flush()


def encode_stream(model, items: Iterable[tuple[str, Loader]], out, batch_size: int = 64, *,
                  on_error: Callable[[str, str], None] | None = None, progress: bool | None = False) -> Summary:
    """Encode ``(key, loader)`` items into ``out`` (a JSONL path, or a sink with ``done`` and ``write``).

    Keys already in ``out`` are skipped; bad images are reported through
    ``on_error(key, message)`` and counted. ``progress=None`` shows a bar only on a terminal.
    """
    sink = out if hasattr(out, "write") else JsonlSink(out)
    summary = Summary()
    report = on_error or (lambda key, message: None)
    total = len(items) if hasattr(items, "__len__") else None
    with tqdm(total=total, disable=None if progress is None else not progress, desc="encode", unit="img") as bar:
        def on_bad(key: str, message: str) -> None:
            bar.update(1)
            report(key, message)

        for keys, images in batches(items, batch_size, summary, on_bad, skip=lambda k: k in sink.done):
            texts = model.texts(images)
            sink.write([{"image": k, "text": t} for k, t in zip(keys, texts)])
            summary.ok += len(keys)
            bar.update(len(keys))
    return summary


def repair_jsonl(path) -> int:
    """Cut a partial last line (no trailing newline) left by a killed writer; returns bytes removed."""
    path = pathlib.Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:  # scan back to the last newline in chunks
            step = min(1 << 16, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                pos = pos - step + idx + 1
                break
            pos -= step
        f.truncate(pos)
        f.flush()
        os.fsync(f.fileno())
    return size - pos


def read_jsonl(path) -> Iterator[dict]:
    """Records of a JSONL file; a partial or corrupt line (a killed writer) is skipped, never raised."""
    path = pathlib.Path(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # a torn last line
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict):
                yield record
