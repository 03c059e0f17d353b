"""WebDataset tar shards and image folders as one stream of ``(key, loader)`` items.

A WebDataset shard is a plain tar in which consecutive members that share a
basename up to its first dot form one sample (``000123.jpg`` + ``000123.txt``
-> sample ``000123``). Each sample's image member becomes one item with the key
``SHARD/MEMBER`` (e.g. ``shards/a.tar/000123.jpg``). Only the standard
``tarfile`` module is used (no webdataset dependency).

Memory stays flat however large a shard is: headers are read one at a time and
forgotten, and a member of an uncompressed shard is read (one seek, one read)
only when its loader is called, so a loader stays valid after the iteration has
moved on (a shuffle buffer can hold it) and skipping an item never reads it.
Members of compressed shards (``.tar.gz``) are read while iterating.

Like folders, shards never raise: a file that is not a tar, a truncated tar,
or a sample without an image becomes an item whose loader raises
``ImageInputError`` with a one-line message.
"""
from __future__ import annotations

import os
import tarfile
from functools import partial
from typing import Iterable, Iterator

from dediffusion.data.inputs import Loader, image_loader, raising_loader
from dediffusion.data.images import ImageInputError, display_path, load_image_bytes
from dediffusion.data.inputs import has_image_extension, iter_inputs

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_shard(name: str) -> bool:
    return name.lower().endswith(SHARD_SUFFIXES)


def image_or_shard(name: str) -> bool:
    return has_image_extension(name) or is_shard(name)


def data_items(paths: Iterable[str | os.PathLike], resolution: int, sort: bool = False
               ) -> Iterator[tuple[str, Loader]]:
    """Files, folders (walked recursively) and shards -> ``(key, loader)``; nothing decoded until called.

    Shards are found inside folders too. ``sort``: each folder's files in name order
    (reproducible on any copy of the data; training uses it).
    """
    for item in iter_inputs(paths, accept=image_or_shard, sort=sort):
        if item.error is None and is_shard(item.path):
            yield from shard_items(item.path, resolution)
        else:
            yield item.key, image_loader(item, resolution)


def _split(name: str) -> tuple[str, str]:
    """WebDataset's rule: ``dir/abc.seg.png`` -> (``dir/abc``, ``seg.png``)."""
    folder, base = os.path.split(name)
    stem, dot, ext = base.partition(".")
    return os.path.join(folder, stem) if folder else stem, ext


def shard_samples(path: str) -> Iterator[tuple[str, list[tarfile.TarInfo] | None, tarfile.TarFile | None, str]]:
    """``(sample key, members, open tar, error)`` per sample; a broken shard ends with one error entry."""
    name = display_path(path)
    try:
        tf = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as e:
        reason = "permission denied" if isinstance(e, PermissionError) else "not a readable tar file"
        yield path, None, None, f"{name}: {reason}"
        return
    with tf:
        key, members = None, []
        while True:
            try:
                m = tf.next()
            except (OSError, tarfile.TarError, EOFError) as e:
                if members:
                    yield key, members, tf, ""
                yield path, None, None, f"{name}: truncated or corrupt tar ({' '.join(str(e).split())})"
                return
            tf.members = []  # tarfile keeps every header it has read; forget them (flat memory)
            if m is not None and not m.isfile():
                continue
            sample = _split(m.name)[0] if m is not None else None
            if members and sample != key:
                yield key, members, tf, ""
                members = []
            if m is None:
                if not _ends_properly(tf):
                    yield path, None, None, f"{name}: truncated tar (no end-of-archive marker)"
                return
            key = sample
            members.append(m)


def _ends_properly(tf: tarfile.TarFile) -> bool:
    """A complete tar ends with a zero block; tarfile takes a header cut short for the end, silently."""
    try:
        tf.fileobj.seek(tf.offset)
        return tf.fileobj.read(tarfile.BLOCKSIZE) == tarfile.NUL * tarfile.BLOCKSIZE
    except (OSError, EOFError):
        return False


def shard_items(path: str, resolution: int) -> Iterator[tuple[str, Loader]]:
    """One ``(SHARD/MEMBER, loader)`` per sample of a shard (its image member)."""
    compressed = not path.lower().endswith(".tar")
    for key, members, tf, error in shard_samples(path):
        if error:
            yield key, partial(raising_loader, error)
            continue
        image = _image_member(members)
        if image is None:
            exts = ", ".join(sorted({_split(m.name)[1] or "(none)" for m in members}))
            yield f"{path}/{key}", partial(raising_loader, f"{display_path(path)}/{key}: no image in sample ({exts})")
            continue
        item_key = f"{path}/{image.name}"
        if compressed:
            data = tf.extractfile(image).read()
            yield item_key, partial(load_image_bytes, data, display_path(item_key), resolution)
        else:
            yield item_key, partial(_read_member, path, image.offset_data, image.size, display_path(item_key),
                                    resolution)


def _image_member(members: list[tarfile.TarInfo]) -> tarfile.TarInfo | None:
    """The sample's image: a plain extension (``jpg``) before a compound one (``seg.png``)."""
    images = [m for m in members if has_image_extension(m.name)]
    plain = [m for m in images if "." not in _split(m.name)[1]]
    return (plain or images or [None])[0]


def _read_member(path: str, offset: int, size: int, name: str, resolution: int):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        raise ImageInputError(f"{name}: {(e.strerror or type(e).__name__).lower()}") from None
    if len(data) != size:
        raise ImageInputError(f"{name}: truncated tar member ({len(data)} of {size} bytes)")
    return load_image_bytes(data, name, resolution)
