"""Where the tail's phantom objects come from (dev, no choice made): content errors of DDIM reconstructions
from the shipped encoder's texts, and from the same texts with words appended, read by the attribute probe.

    OMP_NUM_THREADS=1 python benchmarks/dev_phantoms/phantoms.py --out benchmarks/dev_phantoms/phantoms.json

Dev seed 1, scenes 0-299 (as ``dev_tailhinge/content_errors.py``: same scenes, starting noise and
guidance per budget: 2 at 16 tokens, 1.5 at 32 and for every text longer than 16 words). Conditions: the
16- and 32-token texts; the 32-token text with 50 DDIM steps instead of 25; the 16-token text followed by
16 bare position words (no colour or shape), by 16 function words, or by another scene's tail (tokens
17-32, scenes in a seeded random order); the full caption, and the full caption followed by the same 16
position or function words. Phantoms (objects drawn in empty cells) are also given per scene by the
scene's number of objects.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import torch

from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import full_caption
from dediffusion.eval.probe import targets
from dediffusion.model.attribute_cnn import CONTENTS, load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.model.sampling import generate
from dediffusion.pretrained import resolve

N = 300
POSITIONS = "top right bottom left top left bottom right top right bottom left top left bottom right"
FUNCTION = "a on with the and a on with the and a on with the and a"


@torch.no_grad()
def content_errors(decoder, probe, texts: list[str], truth: torch.Tensor, guidance: float, steps: int = 25,
                   batch: int = 100) -> dict:
    pred = torch.cat([probe(generate(decoder, texts[s:s + batch], steps=steps, guidance=guidance,
                                     seed=1 * 100_003 + s))["content"].argmax(-1) for s in range(0, len(texts), batch)])
    empty = CONTENTS.index("empty")
    phantom, n_objects = (truth == empty) & (pred != empty), (truth != empty).sum(1)
    return {"guidance": guidance, "steps": steps, "content": round(float((pred == truth).float().mean()), 4),
            "hallucinated": int(phantom.sum()),
            "hallucinated per scene, by object count": {
                int(k): round(float(phantom[n_objects == k].sum(1).float().mean()), 3) for k in n_objects.unique()},
            "missed": int(((truth != empty) & (pred == empty)).sum()),
            "wrong_shape": int(((truth != empty) & (pred != empty) & (pred != truth)).sum())}


def conditions(model, chunk_scenes) -> dict:
    """name -> (texts, guidance, steps)."""
    images = images_tensor(chunk_scenes, model.decoder.resolution)
    model.set_inference(inference_tokens=32)
    t32 = model.texts(images)
    t16 = [" ".join(t.split()[:16]) for t in t32]
    tails = [t.split()[16:] for t in t32]
    order = torch.randperm(len(t32), generator=torch.Generator().manual_seed(0)).tolist()
    full = [full_caption(s) for s in chunk_scenes]
    return {"16 tokens": (t16, 2.0, 25), "32 tokens": (t32, 1.5, 25), "32 tokens, 50 steps": (t32, 1.5, 50),
            "16 tokens + 16 position words": ([f"{t} {POSITIONS}" for t in t16], 1.5, 25),
            "16 tokens + 16 function words": ([f"{t} {FUNCTION}" for t in t16], 1.5, 25),
            "16 tokens + another scene's tail": ([" ".join(t.split() + tails[o]) for t, o in zip(t16, order)], 1.5, 25),
            "full caption": (full, 1.5, 25),
            "full caption + 16 position words": ([f"{t} {POSITIONS}" for t in full], 1.5, 25),
            "full caption + 16 function words": ([f"{t} {FUNCTION}" for t in full], 1.5, 25)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--decoder", default=None, help="decoder folder that draws the texts (default: the encoder's)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, probe = load_model(None, decoder=a.decoder), load_probe(resolve(None, "probe"))
    chunk_scenes = scenes(1, 0, N)
    truth = targets(chunk_scenes)["content"]
    empty = CONTENTS.index("empty")
    out = {"model": "shipped:encoder", "decoder": a.decoder or "shipped:decoder", "scenes": f"dev seed 1, 0-{N - 1}",
           "objects": int((truth != empty).sum()), "empty_cells": int((truth == empty).sum())}
    for name, (texts, guidance, steps) in conditions(model, chunk_scenes).items():
        out[name] = content_errors(model.decoder, probe, texts, truth, guidance, steps)
        print(name, out[name], flush=True)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
