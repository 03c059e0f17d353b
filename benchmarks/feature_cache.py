"""Training-step time with and without the frozen-backbone feature cache (``--cache-features``), side by side.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/feature_cache.py \\
        --out benchmarks/scale --steps 10

One process, one thread; the shipped world recipe (``dediffusion train`` defaults: built-in decoder,
batch 32) with a frozen backbone: ``attribute_cnn`` (the CNN pretrained on the scenes) and ImageNet
EfficientNet-Lite0 at 224 px. The shipped recipe's own backbone (``cnn``) trains with the encoder and
cannot be cached; that is recorded too. Per backbone: ``--steps`` steps that compute and store the
features (a first epoch), then the same steps again, uncached and cached (read back: a later epoch or a
repeated run) taking turns, so machine noise hits both alike. Each step is the training loop's body
(``encoder_step``, backward, clipping, AdamW). Medians of wall and CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import statistics
import sys
import tempfile
import time

import torch

BACKBONES = ("cnn", "attribute_cnn", "efficientnet_lite0")


def timed_step(model, cfg, params, opt, step: int, source, cache) -> tuple[float, float]:
    from dediffusion.train.fit_encoder import encoder_step

    t0, c0 = time.perf_counter(), time.process_time()
    loss, _ = encoder_step(model, cfg, step, source=source, cache=cache)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
    opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def backbone_alone(model, source, steps: int) -> float:
    """Median CPU seconds of the frozen backbone's forward pass on one step's batch."""
    out = []
    for step in range(steps):
        images = source.images(step)
        c0 = time.process_time()
        model.encoder.backbone_features(images)
        out.append(time.process_time() - c0)
    return statistics.median(out)


def measure(backbone: str, steps: int, batch: int) -> dict:
    from dediffusion.config import apply_overrides
    from dediffusion.pretrained import resolve
    from dediffusion.train.sources import WorldSource
    from dediffusion.train.fit_encoder import EncoderTrainConfig, build_model
    from dediffusion.train.feature_cache import FeatureCache

    cfg = apply_overrides(EncoderTrainConfig(), [f"model.encoder.backbone={backbone}", f"batch_size={batch}"])
    model = build_model(cfg, resolve(cfg.decoder, "decoder")).train()
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    source = WorldSource(cfg.batch_size, model.decoder.resolution, cfg.data_seed)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cache = FeatureCache(tmp, model.encoder, model.decoder.resolution)
        except ValueError as e:
            return {"cacheable": False, "reason": str(e)}
        timed_step(model, cfg, params, opt, steps, source, None)  # warm-up, outside the cached range
        fill = [timed_step(model, cfg, params, opt, s, source, cache) for s in range(steps)]
        cache.flush()
        plain, cached = [], []
        for s in range(steps):  # taking turns
            plain.append(timed_step(model, cfg, params, opt, s, source, None))
            cached.append(timed_step(model, cfg, params, opt, s, source, cache))
        disk = sum(f.stat().st_size for f in pathlib.Path(tmp).glob("features-*.safetensors"))
        hits, misses = cache.hits, cache.misses
    med = {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
           for name, runs in (("uncached", plain), ("cached_read", cached), ("cached_fill", fill))}
    return {"cacheable": True, "batch": batch, "steps_per_mode": steps, "hits": hits, "misses": misses,
            **{f"{k}_step_s": v[0] for k, v in med.items()}, **{f"{k}_step_cpu_s": v[1] for k, v in med.items()},
            "speedup_wall": med["uncached"][0] / med["cached_read"][0],
            "speedup_cpu": med["uncached"][1] / med["cached_read"][1],
            "fill_overhead_cpu": med["cached_fill"][1] / med["uncached"][1],
            "backbone_forward_cpu_s": backbone_alone(model, source, 3),
            "cache_bytes_per_image": disk / (steps * batch)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/scale")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    command = "nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python " + " ".join(
        shlex.quote(x) for x in sys.argv)
    path = pathlib.Path(a.out) / "feature_cache.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(path.read_text())["rows"] if path.is_file() else {}  # other backbones' rows are kept
    for backbone in a.backbones:
        print(f"[feature_cache] {backbone} ...", file=sys.stderr, flush=True)
        load = os.getloadavg()[0]
        rows[backbone] = {**measure(backbone, a.steps, a.batch), "command": command,
                          "loadavg_1min_start_end": [load, os.getloadavg()[0]]}
        print(f"[feature_cache] {backbone}: {json.dumps(rows[backbone])}", file=sys.stderr, flush=True)
        path.write_text(json.dumps({
            "torch": torch.__version__, "machine": "2-core AMD EPYC (AVX2), one thread, niceness 10, other jobs on "
            "the machine (load average in each row; CPU seconds are the robust figure)", "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
