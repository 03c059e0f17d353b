"""Checkpoints: a folder of safetensors weights plus the resolved config as JSON.

Everything is written to a temporary name and renamed, so a killed process
never leaves a half-written file. Nothing is ever unpickled.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def _atomic(path, write) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)  # the data is on disk before the name points at it (power loss, not just a kill)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path) -> None:
    with contextlib.suppress(OSError):  # e.g. folders on platforms that cannot open them
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> None:
    _atomic(path, lambda tmp: pathlib.Path(tmp).write_text(text, encoding="utf-8"))  # _atomic fsyncs it


def atomic_copy(src, dst) -> None:
    """Copy a file so that ``dst`` is either absent/old or complete, never half-written."""
    _atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


def save_tensors(path, tensors: dict[str, torch.Tensor], dtype: torch.dtype | None = None, metadata=None) -> None:
    """Write tensors to safetensors atomically; floating tensors cast to ``dtype`` if given."""
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    _atomic(path, lambda tmp: save_file(out, tmp, metadata=metadata))


def _existing(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return path


def load_tensors(path, dtype: torch.dtype | None = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (the only weight format read: no code runs on load)."""
    path = _existing(path)
    try:
        tensors = load_file(str(path))
    except Exception as e:  # SafetensorError and friends: a truncated or foreign file
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors


def read_metadata(path) -> dict[str, str]:
    """The string metadata of a safetensors file (read from its header only)."""
    path = _existing(path)
    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


def write_json(path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path) -> dict:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where, strict: bool = True):
    """``module.load_state_dict`` with a one-line ValueError naming ``where`` on missing keys or wrong shapes."""
    try:
        return module.load_state_dict(tensors, strict=strict)
    except RuntimeError as e:
        detail = " ".join(str(e).split("\n", 1)[-1].split())
        raise ValueError(f"{where} does not match its config: {detail[:300]}") from None


def safe_child(folder, name: str) -> pathlib.Path:
    """``folder/name``, refusing names that escape ``folder`` (absolute, '..', links out)."""
    folder = pathlib.Path(folder).resolve()
    target = (folder / name).resolve()
    if target != folder and folder not in target.parents:
        raise ValueError(f"path {name!r} escapes its folder {folder}")
    return target


def file_sha256(files, labels: list[str] | None = None) -> str:
    """SHA-256 over the files' bytes in order, each preceded by its label when given (read 1 MiB at a time)."""
    h = hashlib.sha256()
    for i, path in enumerate(files):
        if labels:
            h.update(labels[i].encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
