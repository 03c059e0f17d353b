"""Seen before any rule (dev stream 1, scenes 300-599, no LLM): twins kept apart until their cells are checked.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_count/explore_twins.py 300 450   # (explore_twins.log)

``reading.mentions`` merges repeated mentions of one colour and shape when either lacks a cell, so two blue
circles become one before the decoder sees them. Here every mention stays until the cell check (which merges
those it puts in one cell), then k, then shapes (the shipped steps). Scored as ``dev_reader_cells/explore.py``.
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

torch.set_num_threads(1)
_spec = importlib.util.spec_from_file_location("cells", pathlib.Path(__file__).parents[1] / "dev_reader_cells" / "explore.py")
cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cells)


def main():
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    model = load_model(None)
    scenes = [sample_scene(1, i) for i in range(lo, hi)]
    images = images_tensor(scenes, 16)
    res, t0 = collections.defaultdict(list), time.time()
    with torch.inference_mode():
        for s in range(0, len(scenes), 50):
            im = images[s:s + 50]
            fused, every = R.read_objects(model, im, 0.2, choose=False)
            res["shipped (cell, k, shape)"] += R.decoder_steps(model.decoder, im, every)
            loose = [(o[:4], b) for o, b in (R.every_mention(t.split()) for t in fused)]  # at most 4
            res["twins kept until the cell check"] += R.decoder_steps(model.decoder, im, loose)
            print(s, round(time.time() - t0), flush=True)
    for k, v in res.items():
        print(k, cells.score(scenes, v), flush=True)


if __name__ == "__main__":
    main()
