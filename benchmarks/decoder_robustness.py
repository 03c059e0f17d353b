"""Does a decoder read encoder-style text? Fixed-noise loss per caption variant, and the full-caption gate.

    OMP_NUM_THREADS=1 python benchmarks/decoder_robustness.py shipped:decoder runs/dec_noisy \
        --out benchmarks/decoder_robustness

For each decoder: the mean denoising loss (t in [200, 999], the same noise and noise levels for every
variant) of 256 dev-seed scenes (seed 1) given variants of the *same* full caption - clean, phrases
shuffled, 30% of words repeated, every word shuffled, a tag list without function words, encoder-like
noise (``world.scenes.corrupt``: drops, repeats, stray words), the human-like caption and the empty
prompt - and the gate: probe accuracy of 500 dev-seed scenes decoded from their full captions (DDIM
25, guidance 3). Writes ``robustness.json`` and ``robustness.md``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import numpy as np
import torch


def variants(chunk, seed: int) -> dict[str, list[str]]:
    from dediffusion.data.world.scenes import corrupt, full_caption, human_caption, tag_caption

    rng = np.random.default_rng(seed)

    def phrases(s):
        objs, bg = full_caption(s).split(" on a ")
        parts = objs.split(" and ")
        return " and ".join(parts[i] for i in rng.permutation(len(parts))) + " on a " + bg

    def repeated(s):
        return " ".join(w + (" " + w if rng.random() < 0.3 else "") for w in full_caption(s).split())

    def shuffled(s):
        words = full_caption(s).split()
        return " ".join(words[i] for i in rng.permutation(len(words)))

    return {"full caption": [full_caption(s) for s in chunk],
            "phrases shuffled": [phrases(s) for s in chunk],
            "30% of words repeated": [repeated(s) for s in chunk],
            "every word shuffled": [shuffled(s) for s in chunk],
            "tag list (no function words)": [tag_caption(s, rng) for s in chunk],
            "encoder-like noise (drop/repeat/stray)": [corrupt(full_caption(s), rng) for s in chunk],
            "human-like caption": [human_caption(s) for s in chunk],
            "empty": [""] * len(chunk)}


def gate(decoder, probe, n: int, seed: int) -> float:
    from dediffusion.model.sampling import generate
    from dediffusion.data.world.batches import scenes
    from dediffusion.eval.probe import attribute_hits, concat_hits, summarise
    from dediffusion.data.world.scenes import full_caption

    hits = []
    for start in range(0, n, 100):
        chunk = scenes(seed, start, min(100, n - start))
        out = generate(decoder, [full_caption(s) for s in chunk], steps=25, guidance=3.0, seed=seed * 100_003 + start)
        hits.append(attribute_hits(probe, out, chunk))
    return summarise(concat_hits(hits))["all"]


def main() -> None:
    from dediffusion.model.decoders import load_decoder
    from dediffusion.eval.evaluate import _fixed_noise_losses
    from dediffusion.pretrained import resolve
    from dediffusion.data.world.batches import scenes
    from dediffusion.model.attribute_cnn import load_probe

    ap = argparse.ArgumentParser()
    ap.add_argument("decoders", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1, help="dev seed")
    ap.add_argument("--n-gate", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(1)
    probe = load_probe(resolve("shipped:probe", "probe"))
    chunk = scenes(a.seed, 0, 256)
    prompts = variants(chunk, a.seed)
    rows = {}
    for ref in a.decoders:
        dec = load_decoder(resolve(ref, "decoder")).eval()
        losses = _fixed_noise_losses(dec, chunk, prompts, a.seed, 200, 999)
        rows[ref] = {"loss": losses, "gate_full_caption_accuracy": gate(dec, probe, a.n_gate, a.seed)}
        print(ref, json.dumps(rows[ref]), file=sys.stderr)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    (out / "robustness.json").write_text(json.dumps({"command": command, "seed": a.seed, "split": "dev",
                                                     "decoders": rows}, indent=2) + "\n")
    names = list(prompts)
    lines = ["# Decoder robustness to encoder-style text (dev seed %d)" % a.seed, "", "    " + command, "",
             "Fixed-noise denoising loss (256 scenes, t in [200, 999]; lower is better) given variants of each "
             "scene's full caption, and the gate: probe accuracy of %d scenes decoded from full captions." % a.n_gate,
             "", "| variant | " + " | ".join(f"`{r}`" for r in rows) + " |", "|---|" + "---|" * len(rows)]
    lines += [f"| {k} | " + " | ".join(f"{rows[r]['loss'][k]:.4f}" for r in rows) + " |" for k in names]
    lines += ["| **gate: full-caption probe accuracy** | " + " | ".join(
        f"{rows[r]['gate_full_caption_accuracy']:.3f}" for r in rows) + " |", ""]
    (out / "robustness.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
