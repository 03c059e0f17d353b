"""Token-count ablation (paper, Table 4: 5/15/45/75 tokens -> FID 9.19/7.42/6.95/6.43), in miniature.

    OMP_NUM_THREADS=1 python benchmarks/ablation_tokens.py runs/abl_tok6 runs/abl_tok12 shipped:encoder \
        --out benchmarks/ablation_tokens

Each encoder folder was trained with ``dediffusion train --out runs/abl_tokN --set
model.encoder.num_tokens=N`` (the shipped recipe otherwise, 2,000 steps) against the shipped
decoder. Reports the decoder's loss given each encoder's text (fixed noise, seeds 2, 3, 4246;
256 scenes each), the fraction of distinct texts over 500 held-out scenes, and probe accuracy of
images decoded from the text (100 scenes of seed 1, DDIM 25, guidance 3).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import torch


def measure(folder: str) -> dict:
    from dediffusion import load_dediffusion, shipped
    from dediffusion.evaluate import caption_losses
    from dediffusion.generate import generate
    from dediffusion.pretrained import resolve
    from dediffusion.world.data import images_tensor, scenes
    from dediffusion.world.probe import attribute_hits, load_probe, summarise

    model = load_dediffusion(resolve(folder, "encoder"), decoder_folder=shipped("decoder")).eval()
    losses = [caption_losses(model.decoder, s, 256, model=model) for s in (2, 3, 4246)]
    mean = {k: sum(r[k] for r in losses) / len(losses) for k in losses[0]}
    texts = model.texts(images_tensor(scenes(1, 0, 500), 16))
    chunk = scenes(1, 0, 100)
    out = generate(model.decoder, model.texts(images_tensor(chunk, 16)), steps=25, guidance=3.0, seed=0)
    acc = summarise(attribute_hits(load_probe(shipped("probe")), out, chunk))
    return {"num_tokens": model.cfg.encoder.num_tokens, "decoder_loss_mean": mean,
            "distinct_text_fraction": len(set(texts)) / len(texts), "probe_accuracy_g3_n100": acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--out", default="benchmarks/ablation_tokens")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = {f: measure(f) for f in a.encoders}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/ablation_tokens.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    (out / "ablation_tokens.json").write_text(json.dumps({"command": cmd, "results": rows}, indent=2))
    lines = ["# Token-count ablation", "", "Command:", "", f"    {cmd}", "",
             "| tokens | decoder loss: text | human caption | full caption | empty | distinct texts | probe accuracy (all) |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows.values(), key=lambda r: r["num_tokens"]):
        m = r["decoder_loss_mean"]
        lines.append(f"| {r['num_tokens']} | {m['dediffusion']:.4f} | {m['human_caption']:.4f} | {m['full_caption']:.4f} | "
                     f"{m['empty']:.4f} | {r['distinct_text_fraction']:.2f} | {r['probe_accuracy_g3_n100']['all']:.3f} |")
    (out / "ablation_tokens.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
