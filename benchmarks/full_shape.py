"""The paper preset at its real shapes on CPU: SD 2.1-base + CLIP ViT-L/14-336 from published configs.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/full_shape.py \\
        --out benchmarks/scale --models runs/full_shape/models

``build``: every model of ``configs/paper_sd21.py`` from ``benchmarks/full_shape_configs`` with random
weights (cost does not depend on them), saved as the diffusers / transformers folders that
``--decoder DIR`` and ``hf:DIR`` read (6.9 GB, never committed). Then each measurement runs in a fresh
process (one thread) so that peak memories are separate: one training step of the preset through
``train.encoder.build_model`` + ``encoder_step`` + the body of ``train.loop.run_training`` (backward,
clipping, AdamW) at batch 1 / 2, UNet gradient checkpointing on or off, fp32 (bf16 autocast only as a
micro-benchmark: this CPU has no bf16 instructions); ``dediffusion train --preset paper_sd21`` itself for
one step; encode and decode one 512-px image. FLOPs of one training step are counted with
``torch.utils.flop_counter``. ``--only NAME ...`` runs some measurements (in that order) and keeps the
other rows of ``OUT/full_shape_cpu.json``. Results and analysis: ``benchmarks/scale.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
CONFIGS = HERE / "full_shape_configs"
GIB = 2 ** 30
# (name, batch, precision, checkpointing); FLOPS_CONFIG counts FLOPs in its warm-up step. bf16 autocast is
# not among them: this CPU has no bf16 instructions and runs it 60-140x slower than fp32 (``bf16_microbench``)
STEPS = [("b1 fp32 ckpt", 1, "fp32", True), ("b1 fp32", 1, "fp32", False), ("b2 fp32 ckpt", 2, "fp32", True),
         ("b2 fp32", 2, "fp32", False)]
FLOPS_CONFIG = "b1 fp32"


# --- build ---------------------------------------------------------------------------------------
def keep_published_dtype(path: pathlib.Path, dtype: str | None) -> None:
    """``save_pretrained`` writes the weights' dtype (fp32); the published SD 2.x text encoder config says
    float16 over fp32 weights, which transformers 5 loads as half by default: keep that trap in place."""
    if dtype:
        saved = json.loads(path.read_text())
        saved.pop("dtype", None)
        path.write_text(json.dumps({**saved, "torch_dtype": dtype}, indent=2) + "\n")


def build_sd(folder: pathlib.Path, seed: int = 0, overrides: dict | None = None) -> None:
    """SD 2.1-base in the diffusers layout; ``overrides``: {"unet"|"vae"|"text_encoder": {field: value}}
    on top of the published configs (the reduced-width test model of ``tests/test_preset_shapes.py``)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    src, overrides = CONFIGS / "sd21_base", overrides or {}
    for cls, name in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")):
        torch.manual_seed(seed)
        config = {**cls.load_config(src / name), **overrides.get(name, {})}
        cls.from_config(config).save_pretrained(folder / name, safe_serialization=True)
    torch.manual_seed(seed)
    config = {**json.loads((src / "text_encoder" / "config.json").read_text()), **overrides.get("text_encoder", {})}
    text = CLIPTextModel(CLIPTextConfig(**config))
    text.save_pretrained(folder / "text_encoder", safe_serialization=True)
    del text
    keep_published_dtype(folder / "text_encoder" / "config.json", config.get("torch_dtype"))
    bpe = HERE.parent / "src" / "dediffusion" / "assets" / "clip_bpe"
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    for f in (bpe / "vocab.json", bpe / "merges.txt", *(src / "tokenizer").glob("*.json")):
        shutil.copy(f, folder / "tokenizer" / f.name)
    shutil.copytree(src / "scheduler", folder / "scheduler", dirs_exist_ok=True)
    shutil.copy(src / "model_index.json", folder / "model_index.json")  # last: marks the folder complete


def build_clip(folder: pathlib.Path, seed: int = 0, overrides: dict | None = None) -> None:
    """CLIP ViT-L/14-336 (text tower included, as published); ``overrides``: {"vision_config"|"text_config"|
    "preprocessor": {field: value}} on top of the published configs."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    src, overrides = CONFIGS / "clip_vit_l14_336", overrides or {}
    config = json.loads((src / "config.json").read_text())
    for part in ("vision_config", "text_config"):
        config[part] = {**config[part], **overrides.get(part, {})}
    CLIPModel(CLIPConfig(**config)).save_pretrained(folder, safe_serialization=True)
    prep = {**json.loads((src / "preprocessor_config.json").read_text()), **overrides.get("preprocessor", {})}
    (folder / "preprocessor_config.json").write_text(json.dumps(prep, indent=2) + "\n")


def build(models: pathlib.Path) -> dict:
    sd, clip = models / "sd21_base", models / "clip_vit_l14_336"
    out = {}
    for name, folder, fn, done in (("sd21_base", sd, build_sd, "model_index.json"),
                                   ("clip_vit_l14_336", clip, build_clip, "preprocessor_config.json")):
        if not (folder / done).is_file():
            t0 = time.perf_counter()
            fn(folder)
            out[f"build_{name}_s"] = round(time.perf_counter() - t0, 1)
        out[f"{name}_bytes"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return out


# --- one measurement per process ----------------------------------------------------------------
def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB


def rss_guard(limit_gib: float, marker: pathlib.Path) -> None:
    """Abort this process (exit 3) before it takes the machine's memory from the jobs beside it."""
    import threading

    import psutil

    def watch():
        proc = psutil.Process()
        while True:
            rss, avail = proc.memory_info().rss / GIB, psutil.virtual_memory().available / GIB
            if rss > limit_gib or avail < 1.5:
                marker.write_text(json.dumps({"aborted": f"RSS {rss:.1f} GiB (limit {limit_gib}), "
                                              f"{avail:.1f} GiB available"}))
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


def preset_config(models: pathlib.Path, batch: int, precision: str, ckpt: bool):
    from dediffusion.config import apply_overrides
    from dediffusion.configs import preset

    return apply_overrides(preset("paper_sd21"), [
        f"batch_size={batch}", "device=cpu", f"model.sd.precision={precision}",
        f"model.sd.gradient_checkpointing={json.dumps(ckpt)}",
        f"model.encoder.backbone=hf:{models / 'clip_vit_l14_336'}", f"decoder={models / 'sd21_base'}"])


def check_gradients(model) -> dict:
    """After backward: every trainable (encoder) parameter has a finite gradient; nothing frozen has one."""
    trainable = {k: p for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p for k, p in model.named_parameters() if not p.requires_grad}
    bad = [k for k, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    leaked = [k for k, p in frozen.items() if p.grad is not None]
    outside = [k for k in trainable if not k.startswith(("encoder.pooler.", "head."))]
    return {"trainable_params": sum(p.numel() for p in trainable.values()),
            "frozen_params": sum(p.numel() for p in frozen.values()),
            "encoder_grads_ok": not bad, "frozen_grads_none": not leaked, "only_pooler_and_head_train": not outside,
            "pooler_query_grad_norm": float(trainable["encoder.pooler.queries"].grad.norm())}


def flop_counter():
    """FlopCounterMode that also counts CPU flash attention (torch registers only the GPU kernels)."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu not in fc.flop_registry:
        fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)(
            lambda q, k, v, *a, out_shape=None, **kw: fc.sdpa_flop_count(q, k, v))
        fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)(
            lambda g, q, k, v, *a, out_shape=None, **kw: fc.sdpa_backward_flop_count(g, q, k, v))
    return fc.FlopCounterMode(display=False)


def flops_by_part(forward, backward, batch: int) -> dict:
    """FLOPs per image: the forward pass by part, the backward pass in all (torch's module tracker
    misattributes backward FLOPs to modules whose backward never closes, e.g. frozen ones)."""
    parts = {"backbone": "encoder.backbone", "pooler": "encoder.pooler", "head": "head",
             "vae_encoder": "decoder.vae", "text_encoder": "decoder.text_encoder", "unet": "decoder.unet"}
    counts = {k: sum(v.values()) for k, v in forward.get_flop_counts().items()}  # a module's count includes its children's
    root = next((k for k in counts if k.endswith("DeDiffusion")), "")

    def within(path: str) -> float:
        """FLOPs inside module ``path``, also when only its submodules were called (``vae.encode``, ...)."""
        hits = [k for k in counts if k == path or k.startswith(path + ".")]
        return sum(counts[k] for k in hits if not any(k.startswith(o + ".") for o in hits if o != k))

    fwd = {name: within(f"{root}.{path}") / batch for name, path in parts.items()}
    fwd["total"] = forward.get_total_flops() / batch
    fwd["other"] = fwd["total"] - sum(v for k, v in fwd.items() if k != "total")  # embedding product, losses
    bwd = backward.get_total_flops() / batch
    return {"forward": fwd, "backward_total": bwd, "total": fwd["total"] + bwd}


def measure_step(models: pathlib.Path, batch: int, precision: str, ckpt: bool, steps: int, flops: bool) -> dict:
    """Build through the real ``build_model``; each step is ``run_training``'s body around ``encoder_step``."""
    from dediffusion.train.fit_encoder import build_model, encoder_step

    cfg = preset_config(models, batch, precision, ckpt)
    t0 = time.perf_counter()
    model = build_model(cfg, cfg.decoder).train()
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = {"load_s": time.perf_counter() - t0, "rss_after_load_gib": peak_rss_gib(), "steps": []}
    for step in range(steps):
        counted = flops and step == 0
        counters = (flop_counter(), flop_counter()) if counted else (contextlib.nullcontext(),) * 2
        t0, c0 = time.perf_counter(), time.process_time()
        with counters[0]:
            loss, logs = encoder_step(model, cfg, step)
        opt.zero_grad(set_to_none=True)
        with counters[1]:
            loss.backward()
        grads = check_gradients(model)
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        out["steps"].append({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                             "loss": float(loss), "finite": bool(torch.isfinite(loss)),
                             "flop_counted": counted, "peak_rss_gib": peak_rss_gib()})
        out["gradients"] = grads
        if counted:
            out["flops_per_image"] = flops_by_part(*counters, batch)
    timed = [s for s in out["steps"] if not s["flop_counted"]]
    out["step_s"] = timed[-1]["seconds"] if timed else None
    out["step_cpu_s"] = timed[-1]["cpu_seconds"] if timed else None  # robust to other jobs on the machine
    return out


def measure_codec(models: pathlib.Path, precision: str, decode_steps: int) -> dict:
    """Encode one 512-px image to text (one forward pass) and decode text to a 512-px image."""
    from dediffusion.model.sampling import generate
    from dediffusion.train.sources import WorldSource
    from dediffusion.train.fit_encoder import build_model

    cfg = preset_config(models, 1, precision, False)
    t0 = time.perf_counter()
    model = build_model(cfg, cfg.decoder).eval()
    out = {"load_s": time.perf_counter() - t0, "rss_after_load_gib": peak_rss_gib()}
    image = WorldSource(1, model.decoder.resolution, 7).images(0)  # (1,3,512,512)
    timings = []
    for _ in range(2):  # the second is reported
        t0, c0 = time.perf_counter(), time.process_time()
        text = model.texts(image)[0]
        timings.append((time.perf_counter() - t0, time.process_time() - c0))
    out.update(encode_s=timings[-1][0], encode_cpu_s=timings[-1][1], encode_first_s=timings[0][0],
               tokens=len(text.split()), rss_after_encode_gib=peak_rss_gib())
    dec = model.decoder

    def timed(name: str, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        out[f"{name}_s"], out[f"{name}_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        return result

    with torch.no_grad():
        cond = timed("text_states", lambda: dec.text_states([text, ""]))
        x = torch.randn(dec.latent_shape(2))
        # one sampling step: cond + uncond in one batch of 2
        timed("unet_cfg_step", lambda: dec.model_fn(x, torch.tensor([500, 500]), cond))
        image = timed("vae_decode", lambda: dec.from_model_space(x[:1]))
    timed(f"decode_{decode_steps}_steps", lambda: generate(dec, [text], steps=decode_steps, guidance=3.0, seed=0))
    for unit in ("s", "cpu_s"):  # the default 25 sampling steps, from the parts measured above
        out[f"decode_25_steps_extrapolated_{unit}"] = (out[f"text_states_{unit}"] + 25 * out[f"unet_cfg_step_{unit}"]
                                                       + out[f"vae_decode_{unit}"])
    out["decode_shape"] = list(image.shape)
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def worker(a) -> int:
    torch.set_num_threads(1)
    marker = pathlib.Path(a.result)
    rss_guard(a.rss_limit, marker)
    models = pathlib.Path(a.models)
    load_start = os.getloadavg()[0]
    if a.kind == "step":
        res = measure_step(models, a.batch, a.precision, a.ckpt, a.steps, a.flops)
    else:
        res = measure_codec(models, a.precision, a.decode_steps)
    res["peak_rss_gib"] = peak_rss_gib()
    res["loadavg_1min_start_end"] = [load_start, os.getloadavg()[0]]  # 2 cores: above 2, jobs wait for a core
    marker.write_text(json.dumps(res))
    return 0


# --- driver --------------------------------------------------------------------------------------
def child(args: list[str], result: pathlib.Path, timeout: float) -> dict:
    """Run one measurement in a fresh one-thread process; its peak memory is its own."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MKL_NUM_THREADS": "1"}
    result.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        nice = ["nice", "-n", str(10 - os.nice(0))] if os.nice(0) < 10 else []  # niceness 10, not 10 more
        proc = subprocess.run([*nice, sys.executable, *args], env=env, timeout=timeout,
                              capture_output=True, text=True)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        rc, tail = "timeout", f"stopped after {timeout:.0f} s"
    res = json.loads(result.read_text()) if result.is_file() else {}
    res["process_wall_s"] = time.perf_counter() - t0
    if rc != 0:
        res.update(returncode=rc, error_tail=tail if "aborted" not in res else "")
    return res


def cli_train(models: pathlib.Path, run: pathlib.Path, result: pathlib.Path, timeout: float) -> dict:
    """``dediffusion train --preset paper_sd21`` for one step: UNet checkpointing (preset), fp32 (see bf16_microbench)."""
    shutil.rmtree(run, ignore_errors=True)
    argv = ["train", "--preset", "paper_sd21", "--out", str(run), "--decoder", str(models / "sd21_base"),
            "--set", f"model.encoder.backbone=hf:{models / 'clip_vit_l14_336'}", "--set", "device=cpu",
            "--set", "batch_size=1", "--set", "steps=1", "--set", "model.sd.precision=fp32"]
    code = ("import json, resource, sys, time, torch; torch.set_num_threads(1); from dediffusion.cli import main; "
            "t0 = time.perf_counter(); rc = main(sys.argv[1:]); "
            f"open({str(result)!r}, 'w').write(json.dumps({{'rc': rc, 'seconds': time.perf_counter() - t0, "
            "'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))")
    res = child(["-c", code, *argv], result, timeout)
    state = run / "train_state.json"
    res["train_state"] = json.loads(state.read_text()) if state.is_file() else None
    res["command"] = "dediffusion " + " ".join(argv)
    shutil.rmtree(run, ignore_errors=True)  # ~2 GB of fp32 encoder + optimizer state
    return res


def bf16_microbench() -> dict:
    """fp32 vs bf16 autocast, one thread, on the two ops that dominate the step (GFLOP/s)."""
    torch.set_num_threads(1)
    a, x, conv = torch.randn(1024, 1024), torch.randn(1, 320, 32, 32), torch.nn.Conv2d(320, 320, 3, padding=1)
    ops = {"matmul 1024^3": (lambda: a @ a, 2 * 1024 ** 3), "conv 3x3 320->320 @32x32": (lambda: conv(x), 2 * 320 * 320 * 9 * 32 * 32)}
    out = {}
    for dtype in ("fp32", "bf16"):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for name, (fn, flops) in ops.items():
                fn()
                t0 = time.perf_counter()
                fn()
                out[f"{dtype} {name} GFLOP/s"] = flops / (time.perf_counter() - t0) / 1e9
    return out


def ceilings(flops_per_image: float) -> dict:
    """Physical limits (dense bf16 peak / FLOPs per image): a ceiling, not a measurement."""
    peaks = {"H200 (989 TFLOP/s dense bf16)": 989e12, "TPUv4 (275 TFLOP/s bf16)": 275e12}
    return {name: {"images_per_s_at_100pct_mfu": peak / flops_per_image,
                   "mfu_needed_for_150_img_s": 150 * flops_per_image / peak,
                   "mfu_of_paper_74_img_s_per_chip": 74 * flops_per_image / peak} for name, peak in peaks.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/scale")
    ap.add_argument("--models", default="runs/full_shape/models")
    ap.add_argument("--only", nargs="*", help="measurement names to run, in this order (default: all)")
    ap.add_argument("--steps", type=int, default=2, help="training steps per configuration (the last is reported)")
    ap.add_argument("--decode-steps", type=int, default=2)
    ap.add_argument("--rss-limit", type=float, default=15.0, help="GiB; a measurement above it is stopped")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--worker", choices=("step", "codec"), dest="kind", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.kind:
        return worker(a)
    models, out = pathlib.Path(a.models).resolve(), pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "full_shape_cpu.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update(command="nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python "
                  + " ".join(sys.argv), machine="2-core AMD EPYC (AVX2, no AVX-512/AMX/bf16), 24 GiB; one thread, "
                  "niceness 10; other jobs on the machine (1-minute load average in each row)", torch=torch.__version__)
    report["build"] = {**report.get("build", {}), **build(models)}
    if not a.only or "bf16_microbench" in a.only:
        report["bf16_microbench"] = bf16_microbench()
    path.write_text(json.dumps(report, indent=2) + "\n")
    result = models.parent / "result.json"
    base = [__file__, "--models", str(models), "--result", str(result), "--rss-limit", str(a.rss_limit)]
    jobs = [(n, ["--worker", "step", "--batch", str(b), "--precision", p, "--steps", str(a.steps)]
             + (["--ckpt"] if c else []) + (["--flops"] if n == FLOPS_CONFIG else [])) for n, b, p, c in STEPS]
    jobs += [("codec fp32", ["--worker", "codec", "--precision", "fp32", "--decode-steps", str(a.decode_steps)])]
    jobs = dict(jobs + [("cli train", None)])
    for name in a.only if a.only is not None else jobs:  # in the order given
        if name not in jobs:
            continue
        args = jobs[name]
        print(f"[full_shape] {name} ...", file=sys.stderr, flush=True)
        if args is None:
            res = cli_train(models, models.parent / "cli_run", result, a.timeout)
        else:
            res = child(base + args, result, a.timeout)
        report.setdefault("runs", {})[name] = res
        flops = res.get("flops_per_image", {}).get("total")
        if flops:
            report["flops_per_image"], report["ceilings"] = res["flops_per_image"], ceilings(flops)
        path.write_text(json.dumps(report, indent=2) + "\n")  # after every run: partial results survive
        print(f"[full_shape] {name}: {json.dumps(res)[:400]}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
