"""Training folders -> compact fp16 inference checkpoints (what the package ships)."""
from __future__ import annotations

import pathlib
import shutil

import torch

from dediffusion.checkpoint import load_tensors, read_json, safe_child, save_tensors, write_json
from dediffusion.config import ConfigError, apply_overrides, from_dict, to_dict
from dediffusion.model.autoencoder import DeDiffusionConfig
from dediffusion.model.decoders import copy_decoder
from dediffusion.pretrained import SHIPPED_PREFIX, resolve_in

KINDS = ("decoder", "encoder", "probe")  # each writes {kind}.safetensors + {kind}.json
# encoder settings that change how text is read from the logits, not the weights: safe to set at export
INFERENCE_KEYS = ("head.inference", "head.sample_temperature", "head.sample_seed", "head.inference_tokens",
                  "head.lm_fusion", "head.adaptive_length")


def _inference_overrides(config: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if item.split("=", 1)[0].strip() not in INFERENCE_KEYS:
            raise ConfigError(f"export --set {item!r}: only {', '.join(INFERENCE_KEYS)} can change at export")
    return to_dict(apply_overrides(from_dict(DeDiffusionConfig, config, where="encoder.json:config"), overrides))


def _own_decoder(run: pathlib.Path, ref: str) -> pathlib.Path | None:
    """The built-in decoder copied inside ``run``, if ``decoder_path`` names one; None for ``shipped:``,
    hub ids and Stable Diffusion folders outside the run (those references are kept as they are)."""
    if not ref or ref.startswith(SHIPPED_PREFIX) or pathlib.Path(ref).is_absolute():
        return None
    src = resolve_in(run, ref, "decoder", "decoder_path", hub=True)
    return src if isinstance(src, pathlib.Path) and (src / "decoder.json").is_file() else None


def _check_recorded_decoder(out: pathlib.Path, ref: str) -> None:
    """Refuse an exported encoder whose recorded ``decoder_path`` would not load from its own folder (a
    relative path is read inside the checkpoint), e.g. ``--decoder-ref benchmarks/checkpoints/my_decoder``."""
    if not ref or ref.startswith(SHIPPED_PREFIX) or pathlib.Path(ref).is_absolute():
        return
    try:
        path = resolve_in(out, ref, "decoder", "decoder_path", hub=True)
    except ValueError as e:
        raise ValueError(f"export --decoder-ref: {e}") from None
    if isinstance(path, pathlib.Path) and not any((path / f).is_file() for f in ("decoder.json", "model_index.json")):
        raise ValueError(f"export --decoder-ref {ref!r}: the exported encoder would read its decoder from {path}, "
                         "which holds none. Leave --decoder-ref out to carry the run's own copy of its decoder, or "
                         "record shipped:NAME, a hub id or an absolute Stable Diffusion folder")


def export(kind: str, run, out, decoder_ref: str | None = None, dtype=torch.float16,
           overrides: list[str] = ()) -> pathlib.Path:
    """Copy ``{kind}.safetensors`` (cast to fp16) and ``{kind}.json`` from ``run`` to ``out``.

    ``overrides`` (encoders only) set inference-time keys, e.g. ``head.inference=sample``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r} (expected one of {', '.join(KINDS)})")
    run, out = pathlib.Path(run), pathlib.Path(out)
    meta = read_json(safe_child(run, f"{kind}.json"))
    if kind == "encoder" and decoder_ref:
        meta["config"]["decoder_path"] = decoder_ref
    if overrides:
        if kind != "encoder":
            raise ValueError("export --set applies to encoders only")
        meta["config"] = _inference_overrides(meta["config"], list(overrides))
    ref = meta["config"].get("decoder_path", "") if kind == "encoder" else ""
    own = _own_decoder(run, ref)
    if kind == "encoder" and own is None:  # before anything is written
        _check_recorded_decoder(out, ref)
    weights = load_tensors(safe_child(run, f"{kind}.safetensors"), None)
    save_tensors(safe_child(out, f"{kind}.safetensors"), weights, dtype)
    write_json(safe_child(out, f"{kind}.json"), meta)
    if own is not None:  # the run's own copy of its decoder travels with it
        copy_decoder(own, safe_child(out, ref))
    for extra in ("train_config.json", "train_state.json"):
        if (run / extra).is_file():
            shutil.copyfile(run / extra, safe_child(out, extra))
    return out
