"""Decoder adapters: frozen text-to-image diffusion models behind one interface.

An adapter exposes ``tokenizer``, ``token_embedding`` (V, D), ``text_states``,
``text_states_from_embeds``, ``loss`` (per-sample denoising loss of images in
[0, 1]), ``model_fn``/``scheduler``/``latent_shape``/``from_model_space`` for
sampling, and ``resolution``. The built-in decoder is a checkpoint folder
(``decoder.json`` + safetensors); Stable Diffusion is a diffusers folder or hub id.
"""
from __future__ import annotations

import pathlib

from dediffusion.checkpoint import atomic_copy, file_sha256, read_json, safe_child
from dediffusion.model.decoders.builtin import BuiltinDecoder, BuiltinDecoderConfig
from dediffusion.model.decoders.sd import StableDiffusionDecoder, StableDiffusionOptions, is_diffusers_ref
from dediffusion.model.decoders.sd import fingerprint as sd_fingerprint

DECODER_KINDS = {"builtin": BuiltinDecoder}


def load_decoder(ref, sd: StableDiffusionOptions | None = None):
    """A built-in decoder folder (its ``decoder.json``), or Stable Diffusion from a diffusers folder or hub id.

    ``sd`` sets how a Stable Diffusion decoder runs (resolution, autocast, checkpointing).
    """
    if is_diffusers_ref(ref):
        return StableDiffusionDecoder(ref, sd or StableDiffusionOptions())
    folder = pathlib.Path(ref)
    if folder.is_dir() and not (folder / "decoder.json").is_file():
        raise FileNotFoundError(f"{folder}: not a decoder (no decoder.json, nor a diffusers model_index.json)")
    meta = read_json(safe_child(folder, "decoder.json"))
    kind = meta.get("kind")
    if kind not in DECODER_KINDS:
        raise ValueError(f"{folder}/decoder.json: unknown decoder kind {kind!r} (known: {', '.join(DECODER_KINDS)})")
    return DECODER_KINDS[kind].load(folder, meta.get("config", {}))


DECODER_FILES = ("decoder.json", "decoder.safetensors")  # what ``save`` writes and ``load`` reads


def copy_decoder(src, dst) -> pathlib.Path:
    """Copy a decoder checkpoint's files into ``dst`` (atomically, file by file); returns ``dst``."""
    for name in DECODER_FILES:
        atomic_copy(safe_child(src, name), safe_child(dst, name))
    return pathlib.Path(dst)


def fingerprint(ref) -> str:
    """SHA-256 of the frozen decoder's weights, recorded in encoder checkpoints."""
    if is_diffusers_ref(ref):
        return sd_fingerprint(ref)
    return file_sha256([safe_child(ref, "decoder.safetensors")])


def freeze(decoder) -> None:
    """Frozen decoder (paper, Sec. 3): no gradients, eval mode."""
    decoder.eval()
    for p in decoder.parameters():
        p.requires_grad_(False)


__all__ = ["BuiltinDecoder", "BuiltinDecoderConfig", "DECODER_KINDS", "StableDiffusionDecoder",
           "StableDiffusionOptions", "copy_decoder", "fingerprint", "freeze", "is_diffusers_ref", "load_decoder"]
