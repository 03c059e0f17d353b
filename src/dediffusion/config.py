"""Typed, frozen config dataclasses: JSON round-trip and dotted CLI overrides.

``apply_overrides(cfg, ["train.lr=3e-4"])`` returns a new config; unknown keys
and values of the wrong type are rejected with an error naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A config field is unknown or has a value of the wrong type."""


# fields removed with failed experiments (benchmarks/RESULTS.md, "Removed options") -> the value that left
# them off (their default): checkpoints recording it still load; any other value is refused by name
RETIRED = {"repeat_penalty": 0.0, "hard_from": 1.0, "min_snr_gamma": None, "text_time_embedding": False,
           "full_resolution_attention": False, "denoiser": "unet", "transformer_width": 128,
           "transformer_layers": 6, "transformer_heads": 4, "patch_size": 2, "tail_hinge": 0.0,
           "loss_weighting": "native", "padded_captions": 0.0}


def to_dict(cfg) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (from JSON or a CLI string) against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (elem, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if tp is typing.Any:
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict[str, Any], where: str = "config"):
    """Build ``cls`` from a (JSON) dict; unknown keys or wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in data.items() if k in fields or not _retired(k, v, where)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _retired(key: str, value: Any, where: str) -> bool:
    """True for a retired field at its neutral value (dropped); ConfigError for one that was in use."""
    if key not in RETIRED:
        return False
    neutral = RETIRED[key]
    if value != neutral or isinstance(value, bool) != isinstance(neutral, bool):
        raise ConfigError(f"{where}.{key}: {key} was removed; this checkpoint was trained with {key}={value!r}, "
                          f"which this version cannot run (only {key}={neutral!r} loads)")
    return True


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # bare strings need no quotes on the command line


def apply_overrides(cfg, overrides: list[str]):
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied (type-checked)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
        key, text = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {item!r}: unknown key {key!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r}")
        node[parts[-1]] = _parse_value(text)
    return from_dict(type(cfg), data)

