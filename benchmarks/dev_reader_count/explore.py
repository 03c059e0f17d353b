"""Seen before a rule (dev stream 1, scenes 300-599, no LLM): the decoder's count after the cell check.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_count/explore.py 300 450   # and 450 600 (explore.log)

The reader picks how many of the fused text's objects to keep (k) before it checks their cells and shapes, so an
object whose cell the text gets wrong or leaves out can cost more than it brings and be cut. Here the checks come
first, on every object the text names, and k after them. Scored as ``dev_reader_cells/explore.py`` scores.
"""
import collections
import importlib.util
import pathlib
import sys
import time

import torch

from dediffusion.apps import reading as R
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.model.autoencoder import load_model
from dediffusion.model.synthesis import decoder_pick

torch.set_num_threads(1)
_spec = importlib.util.spec_from_file_location("cells", pathlib.Path(__file__).parents[1] / "dev_reader_cells" / "explore.py")
cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cells)


def choose_k(decoder, images, read):
    options = [R.captions_by_count(o, b) or [""] for o, b in read]
    ks = [i + 1 for i in decoder_pick(decoder, images, options)]
    return [(o[:k], b) for (o, b), k in zip(read, ks)]


def main():
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    model = load_model(None)
    dec = model.decoder
    scenes = [sample_scene(1, i) for i in range(lo, hi)]
    images = images_tensor(scenes, 16)
    res, t0 = collections.defaultdict(list), time.time()
    with torch.inference_mode():
        for s in range(0, len(scenes), 50):
            im = images[s:s + 50]
            _, every = R.read_objects(model, im, 0.2, choose=False)
            kept = choose_k(dec, im, every)
            res["k_cell_shape (the candidate of dev_reader_cells)"] += cells.check(dec, im, cells.check(dec, im, kept, "cell"), "shape")
            celled = cells.check(dec, im, every, "cell")
            res["cell_k_shape"] += cells.check(dec, im, choose_k(dec, im, celled), "shape")
            res["cell_shape_k"] += choose_k(dec, im, cells.check(dec, im, celled, "shape"))
            print(s, round(time.time() - t0), flush=True)
    for k, v in res.items():
        print(k, cells.score(scenes, v), flush=True)


if __name__ == "__main__":
    main()
