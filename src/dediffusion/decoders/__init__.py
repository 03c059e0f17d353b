"""Decoder adapters: frozen text-to-image diffusion models behind one interface.

An adapter exposes ``tokenizer``, ``token_embedding`` (V, D), ``text_states``,
``text_states_from_embeds``, ``loss`` (per-sample denoising loss of images in
[0, 1]), ``model_fn``/``scheduler`` for sampling, and ``save``/``load``.
"""
from __future__ import annotations

import pathlib

from ..checkpoint import atomic_copy, read_json, safe_child
from .builtin import BuiltinDecoder, BuiltinDecoderConfig

DECODER_KINDS = {"builtin": BuiltinDecoder}


def load_decoder(folder):
    """Load a decoder checkpoint folder written by ``save`` (reads its ``decoder.json``)."""
    folder = pathlib.Path(folder)
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


def freeze(decoder) -> None:
    """Frozen decoder (paper, Sec. 3): no gradients, eval mode."""
    decoder.eval()
    for p in decoder.parameters():
        p.requires_grad_(False)


__all__ = ["BuiltinDecoder", "BuiltinDecoderConfig", "DECODER_KINDS", "copy_decoder", "freeze", "load_decoder"]
