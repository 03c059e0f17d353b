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


def resolve_in(folder, ref: str, default: str, field: str = "path") -> pathlib.Path:
    """A path *read from a config file* in ``folder``: ``shipped:NAME``, empty (the shipped ``default``) or
    a relative path that stays inside ``folder``; absolute paths and '..' escapes are refused."""
    from .checkpoint import safe_child

    if not ref or ref.startswith(SHIPPED_PREFIX):
        return resolve(ref, default)
    try:
        return safe_child(folder, ref)
    except ValueError:
        raise ValueError(f"{folder}: {field} {ref!r} points outside the checkpoint folder; "
                         f"give that folder explicitly (e.g. --decoder) if you trust it") from None


def shipped_ref(folder) -> str | None:
    """``shipped:NAME`` if ``folder`` is a shipped checkpoint, else None."""
    real = pathlib.Path(folder).resolve()
    return next((f"{SHIPPED_PREFIX}{n}" for n in NAMES if shipped(n).resolve() == real), None)
