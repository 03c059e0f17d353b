"""Explore (no choice made on dev or test): adaptive length picked by *sampling* each candidate prefix.

The loss-scored pick (``--adaptive-length``) sees one denoising step; the phantom objects arise along the
sampling path (RESULTS section 4). Here each candidate prefix is sampled (DDIM, ``STEPS`` steps, guidance
``GUIDANCE``) from one seeded noise shared by every image and candidate (not the eval's noise) and the prefix
whose sample is nearest the image in pixels (MSE at the decoder's 16 px) is kept. Explore stream: scene seed 11
(neither dev 1 nor test 7), n = 300.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dev_sampled_length/explore.py RUN_DIR_OR_shipped OUT.json
"""
from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from dediffusion.eval.evaluate import EvalConfig, evaluate_sweep
from dediffusion.model import autoencoder, synthesis
from dediffusion.model.attribute_cnn import load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.model.sampling import _sample
from dediffusion.pretrained import resolve

STEPS, GUIDANCE, SEED = 10, 2.0, 0
PICKED: list[int] = []


@torch.no_grad()
def sampled_pick_lengths(decoder, images, ids, decode):
    if not ids:
        return []
    lengths = synthesis.prefix_lengths(len(ids[0]))
    side = decoder.resolution
    if images.shape[-1] != side:
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    texts = [decode(row[:n]) for row in ids for n in lengths]
    out = _sample(decoder, decoder.text_states(texts), STEPS, GUIDANCE, SEED, None, same_noise=True)
    err = ((out.view(len(ids), len(lengths), *out.shape[1:]) - images[:, None]) ** 2).mean((2, 3, 4))
    picks = err.argmin(1).tolist()
    PICKED.extend(lengths[k] for k in picks)
    return [row[:lengths[k]] for row, k in zip(ids, picks)]


def main(run: str, out: str) -> None:
    torch.set_num_threads(1)
    probe = load_probe(resolve(None, "probe"))
    rows = {}
    for k in (16, 24, 32):
        for mode in ("fixed", "loss", "sampled"):
            autoencoder.pick_lengths = sampled_pick_lengths if mode == "sampled" else synthesis.pick_lengths
            model = load_model(None if run == "shipped" else run, None, k, None, mode != "fixed")
            cfg = EvalConfig(seed=11, n=300, steps=25, guidance=(2.0,), headline=2.0, sources=("dediffusion",),
                             features=("probe",), batch=100, pairs=())
            PICKED.clear()
            r = evaluate_sweep(model, probe, cfg, progress=False)
            rows[f"{mode}_{k}"] = {"raw": r["accuracy"]["dediffusion"], "strict": r["accuracy_strict"]["dediffusion"],
                                   "fd": r["frechet_distance"]["probe"]["dediffusion"],
                                   "kid": r["kid"]["probe"]["dediffusion"],
                                   "picked": {n: PICKED.count(n) for n in sorted(set(PICKED))}}
            print(f"{mode}_{k}", json.dumps(rows[f"{mode}_{k}"]), flush=True)
            json.dump(rows, open(out, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
