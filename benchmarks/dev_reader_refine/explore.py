"""Explore (dev stream 1, scenes 300-599, no LLM; no choice made on the LLM numbers): the reader reads the
encoder's text *refined* by k steps of per-image optimisation (``invert --init encoder``) instead of the
encoder's own logits. Scored as ``dev_reader_cells/explore.py`` scores readers: an oracle answering the VQA
questions from the objects kept (no LLM).

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_refine/explore.py 300 450 [steps,...] [model]
"""
import collections
import importlib.util
import sys
import time

import torch

from dediffusion.apps import reading as R
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.eval.invert import InvertConfig, _BestText, _optimise, encoder_logits
from dediffusion.model.autoencoder import load_model

_spec = importlib.util.spec_from_file_location("cells_explore", "benchmarks/dev_reader_cells/explore.py")
_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cells)
score = _cells.score  # the oracle of dev_reader_cells

torch.set_num_threads(1)


def refined_logits(model, images, steps):
    cfg = InvertConfig(init="encoder", steps=steps)
    allowed = model.head.allowed_ids
    table = model.decoder.token_embedding[allowed].detach().float()
    start = encoder_logits(model, images)
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    with torch.enable_grad():
        for i in range(0, len(images), cfg.batch_size):
            chunk = images[i:i + cfg.batch_size]
            out.append(_optimise(model.decoder, table, chunk, start[i:i + cfg.batch_size], cfg, gen, None,
                                 _BestText(model.decoder, allowed, chunk, cfg)))
    return torch.cat(out)


def main():
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    steps = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "30,100").split(",")]
    model = load_model(sys.argv[4] if len(sys.argv) > 4 else None)
    scenes = [sample_scene(1, i) for i in range(lo, hi)]
    images = images_tensor(scenes, 16)
    res, t0 = collections.defaultdict(list), time.time()
    forward = model.forward_encoder
    for s in range(0, len(scenes), 50):
        im = images[s:s + 50]
        for k in [0] + steps:
            logits = refined_logits(model, im, k) if k else None
            model.forward_encoder = forward if not k else (lambda x, L=logits: L)
            _, read = R.read_objects(model, im, 0.2, choose=False)
            with torch.inference_mode():
                res[f"refine_{k}"] += R.decoder_steps(model.decoder, im, read)
            res[f"refine_{k}_nocheck"] += [(R.merged(o), b) for o, b in read]
            print(s, k, round(time.time() - t0), flush=True)
        model.forward_encoder = forward
    for k, v in res.items():
        print(k, score(scenes, v), flush=True)


if __name__ == "__main__":
    main()
