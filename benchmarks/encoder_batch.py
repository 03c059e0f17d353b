"""What batching buys the encoder itself on this CPU: ms per image of ``model.texts`` at several batch sizes.

    OMP_NUM_THREADS=1 python benchmarks/encoder_batch.py --batches 1,8,32,64 --repeats 40

The shipped encoder, one torch thread, 16 px world scenes; batch sizes interleaved in every repeat (the
machine is noisy), 5 warm-up calls each; medians of ``repeats`` timed calls per batch size. It bounds what
``serve``'s micro-batching can gain over one request at a time before any HTTP cost
(``benchmarks/serve_load.md``). Writes ``benchmarks/encoder_batch.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def measure(batches: list[int], repeats: int) -> dict[int, float]:
    import torch

    from dediffusion import load_dediffusion, shipped
    from dediffusion.data.world.batches import images_tensor, scenes

    torch.set_num_threads(1)
    model = load_dediffusion(shipped("encoder")).eval()
    images = images_tensor(scenes(3, 0, max(batches)), model.decoder.resolution)
    times: dict[int, list[float]] = {b: [] for b in batches}
    with torch.inference_mode():
        for b in batches:
            for _ in range(5):
                model.texts(images[:b])
        for _ in range(repeats):
            for b in batches:
                t0 = time.perf_counter()
                model.texts(images[:b])
                times[b].append((time.perf_counter() - t0) * 1000 / b)
    return {b: statistics.median(v) for b, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--out", default=os.path.join(HERE, "encoder_batch"))
    a = ap.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    ms = measure(batches, a.repeats)
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(x) for x in sys.argv)
    result = {"command": command, "cpu": cpu_name(), "repeats": a.repeats,
              "ms_per_image": {str(b): round(v, 3) for b, v in ms.items()},
              "gain_vs_batch_1": {str(b): round(ms[batches[0]] / v, 2) for b, v in ms.items()}}
    lines = ["# The encoder alone: ms per image by batch size", "", f"    {command}", "",
             f"CPU: {result['cpu']}; one torch thread; medians of {a.repeats} interleaved calls.", "",
             "| batch | ms per image | gain vs batch " + str(batches[0]) + " |", "|---|---|---|"]
    lines += [f"| {b} | {ms[b]:.3f} | {ms[batches[0]] / ms[b]:.2f}x |" for b in batches]
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
