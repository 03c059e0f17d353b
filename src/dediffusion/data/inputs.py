"""Which files a command reads: explicit files as given, folders walked recursively.

Walking never raises: an unreadable folder, a broken link or a symbolic-link
loop becomes an ``InputItem`` with an ``error`` (one line naming the path),
and the walk goes on. Files are yielded as the folder lists them (a folder of
millions of files is never held in memory); sub-folders are visited in sorted
order. Hidden entries (names starting with ".") are skipped inside folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator

import torch

from dediffusion.data.images import ImageInputError, display_path, load_image

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico"})

Loader = Callable[[], torch.Tensor]  # () -> (3,R,R), or raises ImageInputError


@dataclass(frozen=True)
class InputItem:
    """One input: ``key`` is the path as the user sees it (also the resume key); ``error`` if unusable."""

    key: str
    path: str
    error: str | None = None


def has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def iter_inputs(paths: Iterable[str | os.PathLike], accept: Callable[[str], bool] = has_image_extension,
                sort: bool = False) -> Iterator[InputItem]:
    """Files and folders -> InputItems. Explicit files are always tried, whatever their extension.

    Inside folders only names that ``accept`` takes are yielded; ``sort``: files of each folder in
    name order (the same on every copy of the data; holds one folder's names in memory).
    """
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):  # never raises: an unreadable path is "not a folder" and is tried as a file
            yield from _walk(p, set(), accept, sort)
        else:
            yield InputItem(p, p)


def _walk(folder: str, visited: set[tuple[int, int]], accept: Callable[[str], bool], sort: bool
          ) -> Iterator[InputItem]:
    try:
        st = os.stat(folder)
    except OSError as e:
        yield _error(folder, e)
        return
    ident = (st.st_dev, st.st_ino)
    if ident in visited:  # a link back to a folder on the current path (or seen before)
        yield InputItem(folder, folder, f"{display_path(folder)}: symbolic link loop (folder already visited)")
        return
    visited.add(ident)
    subdirs, files = [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                path = os.path.join(folder, entry.name)
                if _is_dir(entry):
                    subdirs.append(path)
                elif accept(entry.name):
                    if sort:
                        files.append(path)
                    else:
                        yield InputItem(path, path)
    except OSError as e:
        yield _error(folder, e)
    yield from (InputItem(path, path) for path in sorted(files))
    for sub in sorted(subdirs):
        yield from _walk(sub, visited, accept, sort)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; a broken or looping link is "not a dir" and is reported as a file
    except OSError:
        return False


def _error(path: str, e: OSError) -> InputItem:
    reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__).lower()
    return InputItem(path, path, f"{display_path(path)}: {reason}")


def raising_loader(message: str) -> torch.Tensor:
    raise ImageInputError(message)


def image_items(paths: Iterable[str | os.PathLike], resolution: int) -> Iterator[tuple[str, Loader]]:
    """Files and folders -> ``(key, loader)`` pairs; nothing is read until a loader is called."""
    for item in iter_inputs(paths):
        yield item.key, image_loader(item, resolution)


def image_loader(item: InputItem, resolution: int) -> Loader:
    return partial(raising_loader, item.error) if item.error else partial(load_image, item.path, resolution)
