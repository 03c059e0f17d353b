"""What the cell check costs: the reader's seconds per image with the old steps (count, shape) and the new ones
(cell, count, shape), side by side in one process, three alternating repeats, median.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_cells/speed.py --out benchmarks/dev_reader_cells/speed.json
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import torch

from dediffusion.apps import reading as R
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.model.autoencoder import load_model

STEPS = {"old (count, shape)": ("count", "shape"), "new (cell, count, shape)": R.READER_STEPS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(None)
    images = images_tensor([sample_scene(1, i) for i in range(2000, 2000 + a.n)], 16)
    times = {name: [] for name in STEPS}
    for _ in range(3):
        for name, steps in STEPS.items():
            t0 = time.perf_counter()
            R.reader_texts(model, images, steps=steps)
            times[name].append((time.perf_counter() - t0) / a.n)
    out = {"what": f"reader_texts, shipped encoder, {a.n} dev scenes (2000..), one thread, seconds per image",
           "median": {k: round(statistics.median(v), 4) for k, v in times.items()},
           "runs": {k: [round(x, 4) for x in v] for k, v in times.items()}}
    med = list(out["median"].values())
    out["ratio_new_over_old"] = round(med[1] / med[0], 2)
    print(json.dumps(out, indent=2))
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
