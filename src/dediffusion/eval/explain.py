"""Per-token attribution: which pixels and which probe attributes each token of an image's text controls.

The image's De-Diffusion text (K token ids, exactly as the encoder emits them) is decoded once as
it is and, for every position i, once per variant: ``remove`` - token i removed (the text closes up
to K-1 tokens); ``replace`` - token i replaced by a neutral word (``NEUTRAL_WORD``, "a": the most
frequent word of English captions and a function word of the world's captions, so the text keeps
its length and its other tokens their positions); ``remove_word`` - every copy of token i's id
removed (encoder texts repeat words, and removing one copy of a repeated word often changes
nothing). All texts are decoded in one batch (identical texts once) from the same starting noise
(``generate_ids(..., same_noise=True)``), so every difference from the full text's reconstruction
is the token's doing. Per variant: the heat map is the per-pixel mean absolute
change over the colour channels, ``change`` its mean (0: the token does nothing, 1: every pixel
flips from black to white), and ``probe_changes`` the attributes the world's attribute probe reads
differently: background, and per grid cell its content (empty / shape), colour and size. Colour and
size count only where the probe reads an object in the cell in both images (where an object
appears or vanishes, that is a content change).

    explain_image(model, image)  # -> JSON-able dict (``dediffusion explain IMAGE`` writes it)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dediffusion.data.images import pil_image_tensor
from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, RESOLUTION, SIZES
from dediffusion.model.attribute_cnn import CONTENTS, load_probe
from dediffusion.model.sampling import generate_ids
from dediffusion.model.tokenizer import decode_ids
from dediffusion.pretrained import shipped

NEUTRAL_WORD = "a"
VARIANTS = ("remove", "replace", "remove_word")
HEAT_SIDE = 64  # heat maps in the JSON are area-pooled to at most this many pixels per side


@dataclass
class Attribution:
    """Everything ``explain`` computed, as tensors (``to_json`` gives the JSON-able dict)."""

    image: torch.Tensor  # (3,R,R) the input at the decoder's resolution
    ids: list[int]  # the K token ids of the text
    images: torch.Tensor  # (1 + len(variants) * K, 3, R', R'): the full text's decode, then each variant's
    variants: tuple[str, ...]
    neutral_id: int
    readings: list[dict] | None  # the probe's reading of every decoded image, or None (no probe)
    settings: dict

    @property
    def reconstruction(self) -> torch.Tensor:
        return self.images[0]

    def variant_images(self, variant: str) -> torch.Tensor:
        """(K, 3, R', R') decodes of ``variant`` (one per position)."""
        k, v = len(self.ids), self.variants.index(variant)
        return self.images[1 + v * k : 1 + (v + 1) * k]

    def heat(self, variant: str) -> torch.Tensor:
        """(K, R', R') per-pixel mean absolute change from the full text's reconstruction, >= 0."""
        return (self.variant_images(variant) - self.reconstruction).abs().mean(1)

    def probe_changes(self, variant: str) -> list[list[dict]] | None:
        if self.readings is None:
            return None
        k, v = len(self.ids), self.variants.index(variant)
        return [probe_changes(self.readings[0], r) for r in self.readings[1 + v * k : 1 + (v + 1) * k]]

    def to_json(self, tokenizer) -> dict:
        per = {v: (self.heat(v), self.probe_changes(v)) for v in self.variants}
        tokens = []
        for i, tid in enumerate(self.ids):
            row = {"position": i, "id": tid, "token": tokenizer.convert_ids_to_tokens(tid),
                   "word": decode_ids(tokenizer, [tid])}
            for v, (heat, changes) in per.items():
                row[v] = {"change": round(float(heat[i].mean()), 5), "heat": _pooled(heat[i]),
                          "probe_changes": None if changes is None else changes[i]}
            tokens.append(row)
        return {"text": decode_ids(tokenizer, self.ids), "tokens": tokens,
                "neutral_word": decode_ids(tokenizer, [self.neutral_id]), "variants": list(self.variants),
                "reading": None if self.readings is None else self.readings[0], **self.settings}


def _pooled(heat: torch.Tensor) -> list[list[float]]:
    """(H,W) -> nested lists, area-pooled to at most HEAT_SIDE per side, 4 decimals."""
    if max(heat.shape) > HEAT_SIDE:
        heat = F.adaptive_avg_pool2d(heat[None], (min(heat.shape[0], HEAT_SIDE), min(heat.shape[1], HEAT_SIDE)))[0]
    return [[round(float(x), 4) for x in row] for row in heat]


def as_image(image, resolution: int) -> torch.Tensor:
    """A PIL image (any mode and size, converted as ``dediffusion encode`` converts files) or a (3,H,W)
    float tensor in [0, 1] (area-resized if needed) -> (3, resolution, resolution) float32."""
    if torch.is_tensor(image):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected one image as a (3, H, W) tensor in [0, 1], got shape {tuple(image.shape)}")
        x = image.detach().float().cpu().clamp(0, 1)
        if tuple(x.shape[-2:]) != (resolution, resolution):
            x = F.interpolate(x[None], size=(resolution, resolution), mode="area")[0]
        return x
    if not hasattr(image, "convert"):
        raise ValueError(f"expected a PIL image or a (3, H, W) tensor, got {type(image).__name__}")
    return pil_image_tensor(image, resolution)


def variant_rows(ids: list[int], neutral_id: int, variants=VARIANTS) -> list[list[int]]:
    """The full text, then per variant one text per position i: token i removed, replaced by
    ``neutral_id``, or every copy of it removed (``remove_word``)."""
    rows = [list(ids)]
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; expected one of {', '.join(VARIANTS)}")
        for i, tid in enumerate(ids):
            if v == "remove":
                rows.append(ids[:i] + ids[i + 1 :])
            elif v == "replace":
                rows.append(ids[:i] + [neutral_id] + ids[i + 1 :])
            else:
                rows.append([t for t in ids if t != tid])
    return rows


def decode_rows(decoder, rows: list[list[int]], batch: int = 0, **sampling) -> torch.Tensor:
    """Decode every row from the same starting noise, ``batch`` rows per call (0: all in one); identical
    rows are decoded once."""
    unique = [list(r) for r in dict.fromkeys(map(tuple, rows))]
    where = {tuple(row): j for j, row in enumerate(unique)}
    step = batch or len(unique)
    images = torch.cat([generate_ids(decoder, unique[i : i + step], same_noise=True, **sampling).cpu()
                        for i in range(0, len(unique), step)])
    return images[torch.tensor([where[tuple(r)] for r in rows])]


def neutral_id(tokenizer, word: str = NEUTRAL_WORD) -> int:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"neutral word {word!r} is {len(ids)} tokens; pick a single-token word")
    return int(ids[0])


@torch.no_grad()
def attribution(model, image, *, seed: int = 0, guidance: float = 3.0, steps: int = 25, probe="auto",
                variants=VARIANTS, neutral: str = NEUTRAL_WORD, batch: int = 0) -> Attribution:
    """Decode the image's text and every one-token variant of it from one starting noise, in one batch
    (``batch`` > 0: that many texts per decoder call, e.g. for Stable Diffusion)."""
    decoder = model.decoder
    x = as_image(image, decoder.resolution)
    dev = next(model.encoder.parameters()).device
    ids = [int(i) for i in model.token_ids(x[None].to(dev))[0]]
    nid = neutral_id(decoder.tokenizer, neutral)
    images = decode_rows(decoder, variant_rows(ids, nid, variants), batch, steps=steps, guidance=guidance, seed=seed)
    judge = default_probe(decoder) if isinstance(probe, str) and probe == "auto" else probe
    readings = probe_readings(judge, images) if judge is not None else None
    settings = {"seed": seed, "guidance": guidance, "steps": steps, "resolution": decoder.resolution,
                "heat_side": min(images.shape[-1], HEAT_SIDE), "probe": judge is not None}
    return Attribution(x, ids, images, tuple(variants), nid, readings, settings)


def explain_image(model, image, *, seed: int = 0, guidance: float = 3.0, steps: int = 25, probe="auto",
                  variants=VARIANTS, neutral: str = NEUTRAL_WORD, batch: int = 0) -> dict:
    """Per-token attribution of one image as a JSON-able dict.

    ``image``: a PIL image or a (3,H,W) float tensor in [0, 1] (``as_image``). ``probe``: "auto" (the
    shipped attribute probe when the decoder is the built-in 16-px world decoder, else none), a
    ``Probe`` or None. Keys: ``text``; ``tokens`` (per position: ``id``, ``token``, ``word`` and per
    variant ``change``, ``heat`` (rows of floats, at most HEAT_SIDE per side) and ``probe_changes``
    (``[{"attribute", "from", "to"}]``, or None without a probe)); ``reading`` (the probe's reading of
    the full text's reconstruction); ``neutral_word``, ``variants``, ``seed``, ``guidance``, ``steps``,
    ``resolution``, ``heat_side``, ``probe``. ``variants``: a subset of VARIANTS ("remove" alone is a
    third of the decoding); ``batch``: texts per decoder call (0: all at once).
    """
    result = attribution(model, image, seed=seed, guidance=guidance, steps=steps, probe=probe, variants=variants,
                         neutral=neutral, batch=batch)
    return result.to_json(model.decoder.tokenizer)


@functools.lru_cache(maxsize=1)
def _shipped_probe():
    return load_probe(shipped("probe"))


def default_probe(decoder):
    """The shipped probe for the built-in decoder at the world's resolution; None for any other decoder."""
    if getattr(decoder, "kind", "") != "builtin" or decoder.resolution != RESOLUTION:
        return None
    return _shipped_probe()


@torch.no_grad()
def probe_readings(probe, images: torch.Tensor) -> list[dict]:
    """What the probe reads in each image: ``{"background", "cells": [{"cell", "content", "colour", "size"}]}``."""
    dev = next(probe.parameters()).device
    logits = {k: v.argmax(-1).cpu() for k, v in probe(images.to(dev)).items()}
    bgs, colours = list(BACKGROUNDS), list(COLOURS)
    return [{"background": bgs[logits["background"][b]],
             "cells": [{"cell": CELLS[c], "content": CONTENTS[logits["content"][b, c]],
                        "colour": colours[logits["colour"][b, c]], "size": SIZES[logits["size"][b, c]]}
                       for c in range(len(CELLS))]}
            for b in range(len(images))]


def probe_changes(before: dict, after: dict) -> list[dict]:
    """Attributes read differently in ``after`` than in ``before``: background, each cell's content, and
    colour and size of cells where both readings hold an object."""
    out = []
    if before["background"] != after["background"]:
        out.append({"attribute": "background", "from": before["background"], "to": after["background"]})
    for a, b in zip(before["cells"], after["cells"]):
        keys = ("content", "colour", "size") if "empty" not in (a["content"], b["content"]) else ("content",)
        out += [{"attribute": f"{a['cell']} {k}", "from": a[k], "to": b[k]} for k in keys if a[k] != b[k]]
    return out
