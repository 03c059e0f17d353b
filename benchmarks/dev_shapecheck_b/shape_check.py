"""Step 1 of ``RULE.md``: the reader's shape check by the encoder's decoder (A) vs decoder B, on unseen dev
scenes (no LLM).

    OMP_NUM_THREADS=1 python benchmarks/dev_shapecheck_b/shape_check.py --start 200 --count 400 \\
        --out benchmarks/dev_shapecheck_b/shape_check.json

Single-object scenes ``start`` .. ``start + count`` of dev stream 1, the shipped encoder: the reader's fused
text and decoder-chosen k once, then the shape check under each setting. A scene is right when its caption
names exactly one object with the scene's colour and shape. Paired bootstrap (2,000 resamples) of B - A.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np
import torch

from dediffusion.apps import reading as R
from dediffusion.apps.vqa import _single_object_scenes
from dediffusion.data.world.batches import images_tensor
from dediffusion.eval.stats import accuracy, paired_bootstrap
from dediffusion.model.autoencoder import load_model

DECODER_B = "benchmarks/checkpoints/decoder_b"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, default=200)
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--model")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model)
    scenes = _single_object_scenes(1, a.start + a.count)[a.start:]
    images = images_tensor(scenes, model.decoder.resolution)
    _, read = R.read_objects(model, images, R.reader_weight(model, None))  # the reader's steps 1-4
    out = {"scenes": f"single-object scenes {a.start}..{a.start + a.count - 1} of dev stream 1", "settings": {}}
    hits = {}
    for name, decoder in {"A": model.decoder, "B": R.load_shape_decoder(DECODER_B, R.READER_FUSION)}.items():
        t0 = time.time()
        texts = [R.caption(o, b) for o, b in R.check_attribute(decoder, images, read, "shape")]
        hits[name] = np.array([t.count(" and ") == 0 and f"{s.objects[0].colour} {s.objects[0].shape}" in t
                               for s, t in zip(scenes, texts)], dtype=float)
        by = {}
        for s, h in zip(scenes, hits[name]):
            by.setdefault(f"{s.objects[0].size} {s.objects[0].shape}", []).append(h)
        out["settings"][name] = {"decoder": "encoder's own" if name == "A" else DECODER_B,
                                 "accuracy": float(hits[name].mean()),
                                 "by_size_shape": {k: round(float(np.mean(v)), 3) for k, v in sorted(by.items())},
                                 "seconds_per_image": round((time.time() - t0) / len(scenes), 3)}
        print(name, out["settings"][name], flush=True)
    ones = np.ones(len(scenes))
    out["b_minus_a"] = paired_bootstrap(accuracy, (hits["B"], ones), (hits["A"], ones), n_boot=2000)
    print(out["b_minus_a"])
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
