"""What the texts say, without a reader: the n-gram logistic-regression probe and surface statistics.

    OMP_NUM_THREADS=1 python benchmarks/text_stats.py shipped:encoder --split test --out benchmarks/text_stats

For each encoder (and the human-like caption, the full caption and the empty prompt as references):
logistic regressions from binary word unigrams + bigrams to scene attributes (``dediffusion.eval.text_probe``)
are fitted on the texts of 2,000 dev scenes (seed 1, scenes 0-1999) and scored on 1,000 held-out scenes:
``--split dev`` scores dev scenes 2000-2999 (for choices), ``--split test`` the test seed 7 (to report).
Also the share of emitted words that name a shape, colour, size or position, readability (the share
of consecutive word pairs that occur in full or human-like captions, and of repeated-word pairs), distinct texts and
mean length. ``--tokens K`` keeps each encoder's first K tokens; ``--fusion 0,0.2`` adds rows for the reader's
caption (``dediffusion.apps.reading``: what ``ask`` / ``chat`` / ``vqa-eval`` read, in its caption layout: the
sentences layout says the same in the caption grammar's words plus "There are N objects" and "The background is"). Writes ``text_stats.json`` and ``text_stats.md``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import torch


def encoder_texts(ref: str, batch: list, tokens: int | None, fusion: float = 0.0) -> list[str]:
    from dediffusion.apps.reading import reader_texts
    from dediffusion.model.autoencoder import load_dediffusion
    from dediffusion.pretrained import resolve
    from dediffusion.data.world.batches import images_tensor

    model = load_dediffusion(resolve(ref, "encoder"))
    if tokens:
        model.set_inference(inference_tokens=tokens)
    out = []
    for i in range(0, len(batch), 250):
        out += reader_texts(model, images_tensor(batch[i : i + 250], model.decoder.resolution), fusion,
                            layout="caption")
    return out


def main(argv=None) -> int:
    from dediffusion.eval.text_probe import surface_stats, text_probe
    from dediffusion.data.world.batches import scenes
    from dediffusion.data.world.scenes import full_caption, human_caption

    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="*")
    ap.add_argument("--split", choices=("dev", "test"), required=True)
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--fusion", default="0", help="comma-separated reader weights: one row per encoder and weight (0: the "
                    "decoder's argmax text; e.g. 0.2: the caption the LLM commands read, apps/reading.py)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    fit = scenes(1, 0, 2000)
    held = scenes(1, 2000, 1000) if a.split == "dev" else scenes(7, 0, 1000)
    sources = {"full_caption": lambda b: [full_caption(s) for s in b],
               "human_caption": lambda b: [human_caption(s) for s in b], "empty": lambda b: [""] * len(b)}
    weights = [float(w) for w in a.fusion.split(",")]
    sources.update({(ref if not w else f"{ref} fusion {w:g}"): (lambda b, ref=ref, w=w: encoder_texts(ref, b, a.tokens, w))
                    for ref in a.encoders for w in weights})
    rows = {}
    for name, texts in sources.items():
        fit_t, held_t = texts(fit), texts(held)
        rows[name] = {"probe": text_probe(fit_t, fit, held_t, held), **surface_stats(held_t), "examples": held_t[:3]}
        print(name, json.dumps(rows[name]), file=sys.stderr)
    full = rows["full_caption"]["probe"]["all"]
    for r in rows.values():
        r["share_of_full_caption"] = r["probe"]["all"] / full
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(x) for x in sys.argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "text_stats.json").write_text(json.dumps({"command": command, "split": a.split, "tokens": a.tokens,
                                                     "rows": rows}, indent=2) + "\n")
    lines = [f"# What the texts say without a reader ({a.split} split)", "", "    " + command, "",
             "| source | n-gram probe, all | background | content | colour | size | share of full caption | "
             "content-word share | caption word pairs | repeated pairs | distinct | words |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        p = r["probe"]
        lines.append(f"| `{name}` | {p['all']:.3f} | {p['background']:.3f} | {p['content']:.3f} | {p['colour']:.3f} | "
                     f"{p['size']:.3f} | {r['share_of_full_caption']:.2f} | {r['content_word_share']:.2f} | "
                     f"{r['caption_pair_share']:.2f} | {r['repeat_pair_share']:.2f} | "
                     f"{r['distinct_text_fraction']:.2f} | {r['mean_words']:.1f} |")
    (out / "text_stats.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
