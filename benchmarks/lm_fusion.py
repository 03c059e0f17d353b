"""Caption-LM fusion at inference (``head.lm_fusion``): what it costs the decoder, what it does to the text (dev).

    OMP_NUM_THREADS=1 python benchmarks/lm_fusion.py shipped:encoder benchmarks/checkpoints/encoder_seed1 \
        benchmarks/checkpoints/encoder_seed2 --weights 0.1,0.15,0.2,0.25,0.3 --out benchmarks/dev_fusion

For 256 dev scenes (seed 1, scenes 0-255) and each encoder: the decoder's fixed-noise loss (t in [200, 999],
the same noise for every text) given the argmax text and the fused texts at each weight; the trigram
NLL per word under the caption language model (the full caption's own: about 0.5); the share of words
that differ from the argmax; distinct texts; three example texts. Writes ``lm_fusion.json`` / ``.md``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import numpy as np
import torch


def lm_nll(model, ids: torch.Tensor) -> float:
    """Mean -log P(w_t | w_{t-2}, w_{t-1}) of the texts (vocabulary ids) under the model's caption LM."""
    from dediffusion.model.autoencoder import caption_prior

    table, index = caption_prior(model, order=3), {int(v): i for i, v in enumerate(model.head.allowed_ids)}
    rows = [[index[int(v)] for v in r] for r in ids]
    return float(-np.mean([table[a, b, c].item() for r in rows for a, b, c in zip(r, r[1:], r[2:])]))


def measure(ref: str, weights: list[float], n: int) -> dict:
    from dediffusion.data.world.batches import images_tensor, scenes
    from dediffusion.data.world.scenes import full_caption
    from dediffusion.eval.evaluate import _fixed_noise_losses
    from dediffusion.model.autoencoder import load_dediffusion
    from dediffusion.model.tokenizer import decode_ids
    from dediffusion.pretrained import resolve

    model = load_dediffusion(resolve(ref, "encoder")).eval()
    chunk = scenes(1, 0, n)
    images = images_tensor(chunk, model.decoder.resolution)
    ids, texts = {}, {}
    for w in [0.0, *weights]:
        model.set_inference(lm_fusion=w)
        ids[w] = model.token_ids(images)
        texts[w] = [decode_ids(model.decoder.tokenizer, r) for r in ids[w]]
    losses = _fixed_noise_losses(model.decoder, chunk, {str(w): t for w, t in texts.items()}, 1, 200, 999)
    return {"encoder": ref, "rows": [{
        "weight": w, "decoder_loss": losses[str(w)], "lm_nll": lm_nll(model, ids[w]),
        "words_changed": float((ids[w] != ids[0.0]).float().mean()), "distinct": len(set(texts[w])) / n,
        "examples": texts[w][:3]} for w in texts], "full_captions": [full_caption(s) for s in chunk[:3]]}


def markdown(result: dict) -> str:
    lines = ["# Caption-LM fusion at inference (dev seed 1, 256 scenes)", "", "    " + result["command"], "",
             "| encoder | weight | decoder loss | vs argmax | LM NLL per word | words changed | distinct |",
             "|---|---|---|---|---|---|---|"]
    for enc in result["encoders"]:
        base = enc["rows"][0]["decoder_loss"]
        for r in enc["rows"]:
            lines.append(f"| `{enc['encoder']}` | {r['weight']:g} | {r['decoder_loss']:.4f} | "
                         f"{r['decoder_loss'] / base - 1:+.0%} | {r['lm_nll']:.2f} | {r['words_changed']:.2f} | "
                         f"{r['distinct']:.2f} |")
    lines += ["", "| weight | mean decoder loss (runs) | vs argmax |", "|---|---|---|"]
    for w, mean in result["mean_decoder_loss"].items():
        lines.append(f"| {w} | {mean:.4f} | {mean / result['mean_decoder_loss']['0.0'] - 1:+.0%} |")
    enc = result["encoders"][0]
    lines += ["", f"Examples (`{enc['encoder']}`, first scene; full caption: {enc['full_captions'][0]}):", ""]
    lines += [f"- {r['weight']:g}: {r['examples'][0]}" for r in enc["rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--weights", default="0.1,0.2,0.3")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    weights = [float(x) for x in a.weights.split(",")]
    encoders = [measure(ref, weights, a.n) for ref in a.encoders]
    mean = {str(r["weight"]): float(np.mean([e["rows"][i]["decoder_loss"] for e in encoders]))
            for i, r in enumerate(encoders[0]["rows"])}
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(x) for x in sys.argv)
    result = {"command": command, "split": "dev", "n": a.n, "encoders": encoders, "mean_decoder_loss": mean}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lm_fusion.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "lm_fusion.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
