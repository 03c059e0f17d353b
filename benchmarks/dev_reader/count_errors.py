"""Where the reader's object count goes wrong (dev, no choice made): per scene, the true number of objects,
how many the fused text names (after merging repeats of one colour + shape) and how many the decoder keeps.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader/count_errors.py --out benchmarks/dev_reader/count_errors.json

Dev stream 1, scenes 300-599 (as ``dev_pick_eps/pick_check.py``'s count part), shipped encoder and decoder,
the reader's default fusion weight. ``duplicates``: scenes with two objects of one colour and shape, which the
reader's grammar merges unless both mentions give different cells.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib

import torch

from dediffusion.apps import reading as R
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.model.autoencoder import load_model


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(None)
    scenes = [sample_scene(1, i) for i in range(300, 600)]
    images = images_tensor(scenes, model.decoder.resolution)
    weight = R.reader_weight(model, None)
    rows = collections.Counter()
    for s in range(0, len(scenes), 100):
        fused = R.fused_texts(model, images[s:s + 100], weight)
        read = [R.mentions(t.split()) for t in fused]
        options = [R.captions_by_count(o, b) or [""] for o, b in read]
        ks = [i + 1 for i in R.decoder_pick(model.decoder, images[s:s + 100], options)]
        for scene, (objects, _), k in zip(scenes[s:s + 100], read, ks):
            pairs = [(o.colour, o.shape) for o in scene.objects]
            dup = len(set(pairs)) < len(pairs)
            rows[(len(scene.objects), len(objects), k, dup)] += 1
    table = [{"objects": t, "named": n, "kept": k, "duplicates": d, "scenes": c} for (t, n, k, d), c in sorted(rows.items())]
    right = sum(r["scenes"] for r in table if r["kept"] == r["objects"])
    named_too_few = sum(r["scenes"] for r in table if r["named"] < r["objects"])
    kept_wrong = sum(r["scenes"] for r in table if r["named"] >= r["objects"] and r["kept"] != r["objects"])
    out = {"scenes": "dev stream 1, 300-599", "count_right": right / len(scenes), "named_too_few": named_too_few,
           "named_enough_but_kept_wrong": kept_wrong, "table": table}
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "table"}))
    for r in table:
        print(r)


if __name__ == "__main__":
    main()
