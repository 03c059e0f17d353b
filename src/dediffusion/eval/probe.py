"""Judging reconstructions with the attribute probe (``model/attribute_cnn.py``).

It is trained on real (rendered) scenes only and is the judge of every
reconstruction: an image decoded from some text is scored by how many of the
source scene's attributes the probe reads back from it.

Attributes checked per scene ("all attributes"): the background colour; for
each of the 4 grid cells, its content (empty or which shape - this also checks
position and object count); and for each object, its colour and size.

Raw accuracy (``all``) reads the colour and size heads in every cell that holds
an object in the source scene, even where the reconstruction has none there, so
a blank reconstruction still earns colour/size hits by chance. Strict accuracy
(``strict``) counts an object's colour and size only where the probe also reads
an object (any shape) in that cell of the reconstruction.
"""
from __future__ import annotations

import torch
from torch import nn

from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SIZES, Scene
from dediffusion.model.attribute_cnn import CONTENTS, HEADS, Probe

ATTRIBUTES = ("background", "content", "colour", "size")
STRICT = ("colour", "size")  # scored strictly: only where the probe reads an object in the cell


def targets(batch: list[Scene]) -> dict[str, torch.Tensor]:
    """Ground-truth class indices; colour/size are -1 for empty cells (ignored)."""
    bg = torch.tensor([list(BACKGROUNDS).index(s.background) for s in batch])
    content = torch.zeros(len(batch), len(CELLS), dtype=torch.long)
    colour = torch.full((len(batch), len(CELLS)), -1, dtype=torch.long)
    size = torch.full((len(batch), len(CELLS)), -1, dtype=torch.long)
    for i, s in enumerate(batch):
        for o in s.objects:
            content[i, o.cell] = CONTENTS.index(o.shape)
            colour[i, o.cell] = list(COLOURS).index(o.colour)
            size[i, o.cell] = SIZES.index(o.size)
    return {"background": bg, "content": content, "colour": colour, "size": size}


def probe_loss(logits: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    ce = nn.functional.cross_entropy
    loss = ce(logits["background"], tgt["background"])
    for k in HEADS:
        loss = loss + ce(logits[k].flatten(0, 1), tgt[k].flatten(), ignore_index=-1)
    return loss


@torch.no_grad()
def attribute_hits(probe: Probe, images: torch.Tensor, batch: list[Scene]) -> dict[str, torch.Tensor]:
    """Per-scene correct/total counts per attribute, reading ``images`` against ``batch``'s truth.

    Returns tensors (B,) ``{attr}_hits`` and ``{attr}_total`` for each attribute, and
    ``colour_strict_hits`` / ``size_strict_hits`` (hits where the probe also reads an object).
    """
    return hits_from_logits(probe(images), targets(batch))


def hits_from_logits(logits: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`attribute_hits` given the probe's logits and the targets."""
    out = {}
    hit_bg = (logits["background"].argmax(-1) == tgt["background"]).float()
    out["background_hits"], out["background_total"] = hit_bg, torch.ones_like(hit_bg)
    present = logits["content"].argmax(-1) != CONTENTS.index("empty")  # (B,4) the probe reads an object
    for k in HEADS:
        valid = tgt[k] >= 0  # (B,4)
        hit = (logits[k].argmax(-1) == tgt[k]) & valid
        out[f"{k}_hits"], out[f"{k}_total"] = hit.sum(1).float(), valid.sum(1).float()
        if k in STRICT:
            out[f"{k}_strict_hits"] = (hit & present).sum(1).float()
    return out


def scene_scores(hits: dict[str, torch.Tensor], strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-scene (hits, checks) over all attributes, raw or strict: (B,), (B,)."""
    names = [f"{a}_strict" if strict and a in STRICT else a for a in ATTRIBUTES]
    return sum(hits[f"{a}_hits"] for a in names), sum(hits[f"{a}_total"] for a in ATTRIBUTES)


def summarise(hits: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy per attribute, strict colour/size, and over all attributes (micro-average): raw ``all``, ``strict``."""
    acc = {a: float(hits[f"{a}_hits"].sum() / hits[f"{a}_total"].sum()) for a in ATTRIBUTES}
    acc.update({f"{a}_strict": float(hits[f"{a}_strict_hits"].sum() / hits[f"{a}_total"].sum()) for a in STRICT})
    for key, strict in (("all", False), ("strict", True)):
        h, t = scene_scores(hits, strict)
        acc[key] = float(h.sum() / t.sum())
    return acc


def concat_hits(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
