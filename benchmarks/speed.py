"""Speed of De-Diffusion's parts against per-image prompt optimisation, on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speed.py --out benchmarks/speed

measures (medians of ``--runs`` timed runs after one warm-up run each):
encode throughput (images/s at batch 1 and 64), decode seconds per image (DDIM,
classifier-free guidance), one encoder training step (the default training
config's batch), and per-image prompt optimisation seconds per image
(``dediffusion invert``'s defaults), and states the encoder-vs-optimisation
ratio. Writes ``speed.json`` and ``speed.md`` (with the command) into ``--out``.
``--tiny`` only checks that the script works (few runs, few steps): its numbers
are not results.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shlex
import statistics
import sys
import time

import torch


def median_seconds(fn, runs: int, warmup=None) -> tuple[float, list[float]]:
    (warmup or fn)()  # warm-up: allocations, lazy imports, scheduler set-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def scene_images(n: int, resolution: int, seed: int = 9) -> torch.Tensor:
    from dediffusion.data.world.batches import images_tensor, scenes

    return images_tensor(scenes(seed, 0, n), resolution)


def bench_encode(model, batch: int, runs: int) -> dict:
    images = scene_images(batch, model.decoder.resolution)
    med, times = median_seconds(lambda: model.texts(images), runs)
    return {"batch": batch, "median_s": med, "images_per_s": batch / med, "runs_s": times}


def bench_decode(model, batch: int, steps: int, guidance: float, runs: int) -> dict:
    from dediffusion.model.sampling import generate

    prompts = model.texts(scene_images(batch, model.decoder.resolution))
    med, times = median_seconds(lambda: generate(model.decoder, prompts, steps=steps, guidance=guidance), runs)
    return {"batch": batch, "steps": steps, "guidance": guidance, "median_s": med, "s_per_image": med / batch,
            "runs_s": times}


def bench_train_step(decoder, overrides: list[str], runs: int) -> dict:
    from dediffusion.config import apply_overrides
    from dediffusion.pretrained import resolve
    from dediffusion.train.fit_encoder import EncoderTrainConfig, build_model, encoder_step

    cfg = apply_overrides(EncoderTrainConfig(), overrides)
    model = build_model(cfg, resolve(decoder or cfg.decoder, "decoder")).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = [0]

    def one_step():
        loss, _ = encoder_step(model, cfg, step[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step[0] += 1

    med, times = median_seconds(one_step, runs)
    return {"batch": cfg.batch_size, "median_s": med, "s_per_image": med / cfg.batch_size, "runs_s": times,
            "overrides": overrides}


def bench_invert(model, n: int, steps: int, batch: int, runs: int) -> dict:
    from dediffusion.eval.invert import InvertConfig, invert_texts

    images = scene_images(n, model.decoder.resolution)
    cfg = InvertConfig(steps=steps, batch_size=batch)
    warm = InvertConfig(steps=2, batch_size=batch)  # a full warm-up run would cost as much as a timed one
    med, times = median_seconds(lambda: invert_texts(model, images, cfg), runs,
                                warmup=lambda: invert_texts(model, images, warm))
    return {"images": n, "steps": steps, "batch": batch, "median_s": med, "s_per_image": med / n, "runs_s": times}


def markdown(r: dict, command: str) -> str:
    e1, e64, dec, tr, inv = (r[k] for k in ("encode_batch1", "encode_batch64", "decode", "train_step", "invert"))
    ratio1, ratio64 = inv["s_per_image"] * e1["images_per_s"], inv["s_per_image"] * e64["images_per_s"]
    rows = [
        ("encode, batch 1", f"{e1['images_per_s']:.1f} images/s", f"{1 / e1['images_per_s']:.4f} s/image"),
        ("encode, batch 64", f"{e64['images_per_s']:.1f} images/s", f"{1 / e64['images_per_s']:.5f} s/image"),
        (f"decode (DDIM {dec['steps']}, guidance {dec['guidance']:g}), batch {dec['batch']}",
         f"{dec['median_s']:.3f} s/batch", f"{dec['s_per_image']:.4f} s/image"),
        (f"encoder training step, batch {tr['batch']}", f"{tr['median_s']:.3f} s/step", f"{tr['s_per_image']:.4f} s/image"),
        (f"per-image optimisation ({inv['steps']} steps, {inv['batch']} in parallel)", f"{inv['median_s']:.1f} s for "
         f"{inv['images']} images", f"{inv['s_per_image']:.3f} s/image"),
    ]
    lines = ["# Speed", "", "Command:", "", f"    {command}", "",
             f"Machine: {r['machine']['cpu_count']} CPUs, torch threads {r['machine']['torch_threads']}, "
             f"torch {r['machine']['torch']}, {r['machine']['platform']}. Medians of {r['runs']} runs "
             "after one warm-up run each (a 2-step one for the optimisation).", ""]
    if r["tiny"]:
        lines += ["**--tiny run: checks that the script works; these numbers are not results.**", ""]
    lines += ["| what | median | per image |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"Encoding is **{ratio64:,.0f}x** faster per image than per-image optimisation at batch 64 "
                  f"(**{ratio1:,.0f}x** at batch 1): {1 / e64['images_per_s']:.5f} s vs {inv['s_per_image']:.3f} s.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="encoder folder (default: shipped)")
    ap.add_argument("--decoder", help="decoder folder (default: the encoder's)")
    ap.add_argument("--out", default="benchmarks/speed", help="folder for speed.json and speed.md")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--decode-steps", type=int, default=25)
    ap.add_argument("--decode-batch", type=int, default=16)
    ap.add_argument("--invert-steps", type=int, default=300)
    ap.add_argument("--invert-images", type=int, default=16)
    ap.add_argument("--invert-batch", type=int, default=16)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    ap.add_argument("--tiny", action="store_true", help="2 runs, few steps: checks the script only")
    a = ap.parse_args(argv)
    if a.tiny:
        a.runs, a.decode_steps, a.invert_steps, a.invert_images, a.invert_batch = 2, 2, 3, 4, 4
        a.set = a.set + ["batch_size=4"]
    from dediffusion.model.autoencoder import load_dediffusion
    from dediffusion.pretrained import resolve

    model = load_dediffusion(resolve(a.model, "encoder"), decoder_folder=a.decoder)
    result = {
        "encode_batch1": bench_encode(model, 1, a.runs),
        "encode_batch64": bench_encode(model, 64, a.runs),
        "decode": bench_decode(model, a.decode_batch, a.decode_steps, 3.0, a.runs),
        "train_step": bench_train_step(a.decoder or model.cfg.decoder_path, a.set, a.runs),
        "invert": bench_invert(model, a.invert_images, a.invert_steps, a.invert_batch, max(1, min(a.runs, 3))),
        "runs": a.runs, "tiny": a.tiny,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "platform": platform.platform(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    command = " ".join(["OMP_NUM_THREADS=" + str(os.environ.get("OMP_NUM_THREADS", "")), "python", "benchmarks/speed.py"]
                       + [shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])])
    result["command"] = command
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "speed.md").write_text(markdown(result, command))
    print(markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
