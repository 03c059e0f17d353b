"""The checkpoints shipped with the package (built-in decoder, encoder, judging probe, encoder backbone)."""
from __future__ import annotations

import pathlib
from importlib import resources

SHIPPED_PREFIX = "shipped:"
NAMES = ("decoder", "encoder", "probe", "backbone")


def shipped(name: str) -> pathlib.Path:
    if name not in NAMES:
        raise ValueError(f"no shipped checkpoint {name!r} (shipped: {', '.join(NAMES)})")
    return pathlib.Path(str(resources.files("dediffusion") / "assets" / "checkpoints" / name))


def resolve(path: str | pathlib.Path | None, default: str) -> pathlib.Path:
    """A user path, ``shipped:NAME``, or (None / empty) the shipped ``default``."""
    if not path:
        return shipped(default)
    text = str(path)
    if text.startswith(SHIPPED_PREFIX):
        return shipped(text[len(SHIPPED_PREFIX):])
    return pathlib.Path(text)
