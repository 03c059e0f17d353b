"""Step 1 of ``RULE.md``: the reader's decoder pick scored in eps-space over t in [50, 999] (new) vs the
training loss over 8 random t in [200, 999] (old), on unseen dev scenes, no LLM.

    OMP_NUM_THREADS=1 python benchmarks/dev_pick_eps/pick_check.py --part shapes --out benchmarks/dev_pick_eps/shapes.json
    OMP_NUM_THREADS=1 python benchmarks/dev_pick_eps/pick_check.py --part count --out benchmarks/dev_pick_eps/count.json

``shapes``: single-object scenes 600-999 of dev stream 1; a scene is right when the reader's caption names
exactly one object with the scene's colour and shape (decoder A, and decoder B as shape checker). ``count``:
all scenes 300-999 of dev stream 1; right when the reader keeps as many objects as the scene holds (decoder
A). Shipped encoder; paired bootstrap (2,000 resamples) of new - old.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import torch

from dediffusion.apps import reading as R
from dediffusion.apps.vqa import _single_object_scenes
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.eval.stats import accuracy, paired_bootstrap
from dediffusion.model.autoencoder import load_model
from dediffusion.model.synthesis import pick_by_loss

DECODER_B = "benchmarks/checkpoints/decoder_b"
NEW_PICK = R.decoder_pick


def old_pick(decoder, images, candidates, draws=8, seed=0):
    """The pick before this rule (commit 22a8d37): mean training loss over 8 random t in [200, 999]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(200, 1000, (draws,), generator=gen)
    noise = torch.randn(decoder.latent_shape(draws), generator=gen)
    return pick_by_loss(decoder, images, candidates, t, noise, torch.ones(draws))


def reader(model, images, pick, checker=None):
    """(objects, background) per image after the reader's steps 1-4 and the shape check, with ``pick``."""
    R.decoder_pick = pick
    try:
        _, read = R.read_objects(model, images, R.reader_weight(model, None))
        texts = [R.caption(o, b) for o, b in R.check_attribute(checker or model.decoder, images, read, "shape")]
    finally:
        R.decoder_pick = NEW_PICK
    return read, texts


def compare(hits: dict, n: int) -> dict:
    ones = np.ones(n)
    return {"new": float(hits["new"].mean()), "old": float(hits["old"].mean()),
            "new_minus_old": paired_bootstrap(accuracy, (hits["new"], ones), (hits["old"], ones), n_boot=2000)}


def shapes(model) -> dict:
    scenes = _single_object_scenes(1, 1000)[600:]
    images = images_tensor(scenes, 16)
    out = {"scenes": "single-object scenes 600..999 of dev stream 1"}
    for name, checker in {"A": None, "B": R.load_shape_decoder(DECODER_B, R.READER_FUSION)}.items():
        hits = {}
        for tag, pick in {"old": old_pick, "new": NEW_PICK}.items():
            _, texts = reader(model, images, pick, checker)
            hits[tag] = np.array([t.count(" and ") == 0 and f"{s.objects[0].colour} {s.objects[0].shape}" in t
                                  for s, t in zip(scenes, texts)], dtype=float)
        out[name] = compare(hits, len(scenes))
        print(name, out[name], flush=True)
    return out


def count(model) -> dict:
    scenes = [sample_scene(1, i) for i in range(300, 1000)]
    images = images_tensor(scenes, 16)
    hits = {}
    for tag, pick in {"old": old_pick, "new": NEW_PICK}.items():
        R.decoder_pick = pick
        try:
            _, read = R.read_objects(model, images, R.reader_weight(model, None))
        finally:
            R.decoder_pick = NEW_PICK
        hits[tag] = np.array([len(o) == len(s.objects) for (o, _), s in zip(read, scenes)], dtype=float)
    out = {"scenes": "scenes 300..999 of dev stream 1", "A": compare(hits, len(scenes))}
    print(out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("shapes", "count"), required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(None)
    out = shapes(model) if a.part == "shapes" else count(model)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
