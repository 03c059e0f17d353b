"""The checkpoints shipped with the package (built-in decoder, encoder, judging probe, encoder backbone)."""
from __future__ import annotations

import pathlib
import re
from importlib import resources

from dediffusion.checkpoint import safe_child

SHIPPED_PREFIX = "shipped:"
NAMES = ("decoder", "encoder", "probe", "backbone")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


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


def is_hub_id(ref: str) -> bool:
    """Shaped like a model-hub id (``org/name``: two plain names), which is no filesystem path."""
    return bool(_HUB_ID.fullmatch(ref)) and ".." not in ref


def resolve_in(folder, ref: str, default: str, field: str = "path", hub: bool = False,
               flag: str = "--decoder") -> pathlib.Path | str:
    """A path *read from a config file* in ``folder``: ``shipped:NAME``, empty (the shipped ``default``) or
    a relative path that stays inside ``folder``; absolute paths and '..' escapes are refused.

    With ``hub``, a hub id (``org/name``, not a folder inside ``folder``) is returned as the string:
    the model then comes from the hub cache, never from a path the config chose. ``flag``: the option
    that gives the model explicitly instead (named in the errors)."""
    if not ref or ref.startswith(SHIPPED_PREFIX):
        return resolve(ref, default)
    try:
        path = safe_child(folder, ref)
    except ValueError:
        raise ValueError(f"{folder}: {field} {ref!r} points outside the checkpoint folder; "
                         f"give that folder explicitly (e.g. {flag}) if you trust it") from None
    if hub and is_hub_id(ref) and not path.exists():
        if pathlib.Path(ref).exists():  # loaders would read this folder of the working directory instead
            raise ValueError(f"{folder}: {field} {ref!r} is a hub id but also a folder in the working directory; "
                             f"give it explicitly (e.g. {flag})")
        return ref
    return path


def shipped_ref(folder) -> str | None:
    """``shipped:NAME`` if ``folder`` is a shipped checkpoint, else None."""
    real = pathlib.Path(folder).resolve()
    return next((f"{SHIPPED_PREFIX}{n}" for n in NAMES if shipped(n).resolve() == real), None)
