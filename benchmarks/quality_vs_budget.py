"""Encoder vs per-image prompt optimisation at matched quality (issue 4: "at comparable or better quality").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_vs_budget.py --out benchmarks/quality_vs_budget

One run, side by side, on ``--n`` held-out scenes (seed 3): the shipped encoder's text, and
``dediffusion invert`` prompts (same token count, vocabulary and frozen decoder) after each budget
of ``--budgets`` optimisation steps. For each: seconds per image to obtain the prompt (encoder at
batch 64, optimisation with 16 images in parallel, as ``invert``'s default), the decoder's loss given
the hard prompt (8 fixed (t, noise) draws per image, t in [200, 999]; lower is better), and the
probe's all-attribute accuracy on images decoded from it (DDIM 25, guidance 3, same starting
noise). Human-like and full captions are references. The smallest budget whose loss is at or
below the encoder's defines "comparable quality"; the time ratio at that budget is stated.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shlex
import sys
import time

import torch


def _judge(model, probe, images, scenes_, ids) -> dict:
    from dediffusion.generate import generate
    from dediffusion.invert import prompt_loss
    from dediffusion.tokenizer import decode_ids
    from dediffusion.world.probe import attribute_hits, summarise

    ids = [list(r) for r in (ids.tolist() if torch.is_tensor(ids) else ids)]
    texts = [decode_ids(model.decoder.tokenizer, r) for r in ids]
    out = generate(model.decoder, texts, steps=25, guidance=3.0, seed=0)
    return {"decoder_loss": float(prompt_loss(model.decoder, images, ids).mean()),
            "probe_accuracy": summarise(attribute_hits(probe, out, scenes_))["all"]}


def run(n: int, budgets: list[int], seed: int = 3) -> dict:
    from dediffusion import load_dediffusion, shipped
    from dediffusion.invert import InvertConfig, invert
    from dediffusion.world.data import images_tensor, scenes
    from dediffusion.world.probe import load_probe
    from dediffusion.world.scenes import full_caption, human_caption

    model, probe = load_dediffusion(shipped("encoder")).eval(), load_probe(shipped("probe"))
    sc = scenes(seed, 0, n)
    images = images_tensor(sc, model.decoder.resolution)
    rows = {}
    model.token_ids(images[:64])  # warm-up
    t0 = time.perf_counter()
    ids = torch.cat([model.token_ids(images[i : i + 64]) for i in range(0, n, 64)])
    rows["encoder"] = {"s_per_image": (time.perf_counter() - t0) / n, **_judge(model, probe, images, sc, ids)}
    for steps in budgets:
        t0 = time.perf_counter()
        ids = invert(model.decoder, model.head.allowed_ids, images, InvertConfig(steps=steps), model.cfg.encoder.num_tokens)
        rows[f"invert_{steps}"] = {"steps": steps, "s_per_image": (time.perf_counter() - t0) / n,
                                   **_judge(model, probe, images, sc, ids)}
    for name, fn in (("human_caption", human_caption), ("full_caption", full_caption)):
        rows[name] = _judge(model, probe, images, sc, model.decoder.tokenize([fn(s) for s in sc]))
    return rows


def _cheapest(rows: dict, key: str, better) -> dict | None:
    enc = rows["encoder"][key]
    matched = [r for k, r in rows.items() if k.startswith("invert_") and better(r[key], enc)]
    return min(matched, key=lambda r: r["steps"]) if matched else None


def _verdict(rows: dict) -> str:
    """The encoder's speed-up over the cheapest optimisation budget that matches it, by each quality measure."""
    enc = rows["encoder"]
    out = []
    for key, label, better in (("decoder_loss", "decoder loss at or below", lambda r, e: r <= e),
                               ("probe_accuracy", "probe accuracy at or above", lambda r, e: r >= e)):
        r = _cheapest(rows, key, better)
        if r is None:
            out.append(f"No optimisation budget tried reaches the encoder's {key.replace('_', ' ')}.")
            continue
        out.append(f"Cheapest optimisation budget with {label} the encoder's: {r['steps']} steps "
                   f"({r[key]:.4f} vs {enc[key]:.4f}), {r['s_per_image']:.3f} s/image vs {enc['s_per_image']:.5f} s/image: "
                   f"the encoder is **{r['s_per_image'] / enc['s_per_image']:,.0f}x** faster at comparable quality.")
    return "\n\n".join(out)


def markdown(rows: dict, command: str) -> str:
    lines = ["# Encoder vs per-image optimisation at matched quality", "", "Command:", "", f"    {command}", "",
             f"Machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
             f"{platform.platform()}. One run; all rows measured side by side.", "",
             "| prompt | seconds per image | decoder loss (lower is better) | probe accuracy (all) |", "|---|---|---|---|"]
    for k, r in rows.items():
        s = f"{r['s_per_image']:.5f}" if "s_per_image" in r else "-"
        lines.append(f"| {k} | {s} | {r['decoder_loss']:.4f} | {r['probe_accuracy']:.3f} |")
    return "\n".join(lines + ["", _verdict(rows), ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/quality_vs_budget")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--budgets", default="10,25,50,100,300")
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown and verdict from the JSON in --out")
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = pathlib.Path(a.out)
    if a.render:
        saved = json.loads((out / "quality_vs_budget.json").read_text())
        rows, command = saved["rows"], saved["command"]
    else:
        rows = run(a.n, [int(b) for b in a.budgets.split(",")])
        command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_vs_budget.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_vs_budget.json").write_text(json.dumps({"command": command, "rows": rows, "verdict": _verdict(rows)}, indent=2))
    (out / "quality_vs_budget.md").write_text(markdown(rows, command))
    print(markdown(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
