"""What kind of content errors the tail tokens make (dev; RULE.md): objects drawn in empty cells, objects
missed, wrong shapes, per token budget, read by the attribute probe from DDIM reconstructions.

    OMP_NUM_THREADS=1 python benchmarks/dev_tailhinge/content_errors.py --model runs/st13_s0_export \\
        --out benchmarks/dev_tailhinge/content_errors_s0.json

Same scenes (dev seed 1, the first ``n``), guidance per budget (``dev_tokens/RULE.md``) and starting noise
as ``dediffusion eval --split dev`` with ``--batch-size 100``.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import torch

from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.eval.probe import targets
from dediffusion.model.attribute_cnn import CONTENTS, load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.model.sampling import generate
from dediffusion.pretrained import resolve

BUDGETS = {16: 2.0, 24: 1.5, 32: 1.5}  # tokens: guidance (dev_tokens/RULE.md)


@torch.no_grad()
def errors(model, probe, n: int, tokens: int, guidance: float, batch: int = 100) -> dict:
    chunk_scenes = scenes(1, 0, n)
    images = images_tensor(chunk_scenes, model.decoder.resolution)
    truth = targets(chunk_scenes)["content"]
    model.set_inference(inference_tokens=tokens)
    texts = model.texts(images)
    pred = torch.cat([probe(generate(model.decoder, texts[s:s + batch], steps=25, guidance=guidance,
                                     seed=1 * 100_003 + s))["content"].argmax(-1) for s in range(0, n, batch)])
    empty = CONTENTS.index("empty")
    return {"content": round(float((pred == truth).float().mean()), 4),
            "hallucinated": int(((truth == empty) & (pred != empty)).sum()),
            "missed": int(((truth != empty) & (pred == empty)).sum()),
            "wrong_shape": int(((truth != empty) & (pred != empty) & (pred != truth)).sum()),
            "objects": int((truth != empty).sum()), "empty_cells": int((truth == empty).sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, probe = load_model(a.model), load_probe(resolve(None, "probe"))
    out = {"model": a.model or "shipped:encoder", "n": a.n}
    for k, g in BUDGETS.items():
        out[f"K{k}"] = {"guidance": g, **errors(model, probe, a.n, k, g)}
        print(k, out[f"K{k}"], flush=True)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
