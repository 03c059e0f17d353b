"""Encoder training step: seconds per image, by batch size and memory format, measured side by side.

    OMP_NUM_THREADS=1 python benchmarks/encoder_step.py --out benchmarks/encoder_step

One process, one thread. Every configuration runs the real training step (``train.encoder.encoder_step``
forward + backward, the shipped decoder frozen) of the shipped recipe; configurations take turns
(round-robin, ``--rounds`` rounds of ``--steps`` steps each) so that machine noise hits them alike, and
the median step time is reported. Writes ``encoder_step.json`` and ``encoder_step.md``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import statistics
import sys
import time

import torch

CONFIGS = {"batch 32": (32, False), "batch 64": (64, False), "batch 128": (128, False),
           "batch 128, channels-last": (128, True)}


def build(batch: int, channels_last: bool):
    import dataclasses

    from dediffusion.pretrained import resolve
    from dediffusion.train.fit_encoder import EncoderTrainConfig, build_model

    cfg = dataclasses.replace(EncoderTrainConfig(), batch_size=batch)
    model = build_model(cfg, resolve("shipped:decoder", "decoder")).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return cfg, model


def timed_steps(cfg, model, steps: int, start: int) -> list[float]:
    from dediffusion.train.fit_encoder import encoder_step

    out = []
    for i in range(start, start + steps):
        t0 = time.perf_counter()
        loss, _ = encoder_step(model, cfg, i)
        loss.backward()
        model.zero_grad(set_to_none=True)
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    built = {name: build(*spec) for name, spec in CONFIGS.items()}
    times = {name: [] for name in CONFIGS}
    for name, (cfg, model) in built.items():
        timed_steps(cfg, model, 1, 0)  # warm-up
    for r in range(a.rounds):
        for name, (cfg, model) in built.items():
            times[name] += timed_steps(cfg, model, a.steps, 1 + r * a.steps)
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name] = {"batch": CONFIGS[name][0], "median_step_s": med, "ms_per_image": 1000 * med / CONFIGS[name][0]}
    base = rows["batch 32"]["ms_per_image"]
    for r in rows.values():
        r["speedup_per_image_vs_batch_32"] = base / r["ms_per_image"]
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(x) for x in sys.argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoder_step.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    lines = ["# Encoder training step, seconds per image (one thread, side by side)", "", "    " + command, "",
             "| configuration | median step (s) | ms per image | per-image speed-up vs batch 32 |", "|---|---|---|---|"]
    lines += [f"| {k} | {r['median_step_s']:.3f} | {r['ms_per_image']:.2f} | {r['speedup_per_image_vs_batch_32']:.2f}x |"
              for k, r in rows.items()]
    (out / "encoder_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
