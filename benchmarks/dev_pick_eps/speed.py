"""What the noise-space pick costs: the reader's seconds per image with the old pick (8 draws) and the new one
(16 draws), side by side in one process, three alternating repeats, median.

    OMP_NUM_THREADS=1 python benchmarks/dev_pick_eps/speed.py --out benchmarks/dev_pick_eps/speed.json
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from pick_check import NEW_PICK, old_pick  # noqa: E402

from dediffusion.apps import reading as R  # noqa: E402
from dediffusion.data.world.batches import images_tensor  # noqa: E402
from dediffusion.data.world.scenes import sample_scene  # noqa: E402
from dediffusion.model.autoencoder import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(None)
    images = images_tensor([sample_scene(1, i) for i in range(2000, 2000 + a.n)], 16)
    times = {"old (8 draws, v-loss)": [], "new (16 draws, eps-space)": []}
    for _ in range(3):
        for name, pick in zip(times, (old_pick, NEW_PICK)):
            R.decoder_pick = pick
            t0 = time.perf_counter()
            R.reader_texts(model, images)
            times[name].append((time.perf_counter() - t0) / a.n)
            R.decoder_pick = NEW_PICK
    out = {"what": f"reader_texts, shipped encoder, {a.n} dev scenes (2000..), one thread, seconds per image",
           "median": {k: round(statistics.median(v), 4) for k, v in times.items()},
           "runs": {k: [round(x, 4) for x in v] for k, v in times.items()}}
    med = list(out["median"].values())
    out["ratio_new_over_old"] = round(med[1] / med[0], 2)
    print(json.dumps(out, indent=2))
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
