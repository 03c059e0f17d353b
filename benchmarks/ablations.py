"""Text-head ablations (paper, Sec. 3 choices): vocabulary exclusion and temperature annealing, in miniature.

    OMP_NUM_THREADS=1 python benchmarks/ablations.py runs/abl_base1k runs/abl_words1k runs/abl_all1k \
        runs/abl_fixed1k --out benchmarks/ablations

Each encoder folder was trained for 1,000 steps against the shipped decoder with the shipped recipe
(``dediffusion train --out DIR --set steps=1000``) and one change:

* ``--set model.head.vocab=words``: the paper's mask (special tokens and punctuation excluded) over
  the whole 49,408-token CLIP vocabulary instead of the shipped allow-list of the decoder's words;
* ``--set model.head.vocab=all``: nothing excluded but the BOS/EOS/pad ids;
* ``--set model.head.anneal=false``: Gumbel temperature fixed at 2.0 instead of annealed 2.0 -> 0.3.

Reports the decoder's loss given each encoder's text (fixed noise, seeds 2, 3, 4246; 256 scenes
each), the fraction of distinct texts over 500 held-out scenes, the share of text tokens that are
not words of the world's vocabulary, and probe accuracy of images decoded from the text (100
scenes of seed 1, DDIM 25, guidance 3).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import torch


def _vocab_label(model_cfg: dict) -> str:
    """The head's vocabulary, naming the punctuation tokens an allow-list adds."""
    vocab = model_cfg["head"]["vocab"]
    punct = [w for w in model_cfg.get("allow_words", []) if not any(c.isalnum() for c in w)]
    return f"{vocab} + {len(punct)} punctuation tokens" if vocab == "allow_list" and punct else vocab


def _setting(model, folder: pathlib.Path) -> dict:
    cfg = json.loads((folder / "train_config.json").read_text())["config"]
    head = model.cfg.head
    return {"vocab": _vocab_label(cfg["model"]), "anneal": head.anneal, "tau": f"{head.tau_start}->{head.tau_end}" if head.anneal
            else f"{head.tau_start} fixed", "num_tokens": model.cfg.encoder.num_tokens, "steps": cfg["steps"]}


def measure(folder: str) -> dict:
    from dediffusion import load_dediffusion, shipped
    from dediffusion.eval.evaluate import caption_losses
    from dediffusion.model.sampling import generate
    from dediffusion.data.world.batches import images_tensor, scenes
    from dediffusion.eval.probe import attribute_hits, summarise
    from dediffusion.model.attribute_cnn import load_probe
    from dediffusion.data.world.scenes import vocabulary_words

    folder = pathlib.Path(folder)
    model = load_dediffusion(folder, decoder_folder=shipped("decoder")).eval()
    losses = [caption_losses(model.decoder, s, 256, model=model) for s in (2, 3, 4246)]
    mean = {k: sum(r[k] for r in losses) / len(losses) for k in losses[0]}
    texts = model.texts(images_tensor(scenes(1, 0, 500), 16))
    words = [w for t in texts for w in t.split()]
    known = set(vocabulary_words())
    chunk = scenes(1, 0, 100)
    out = generate(model.decoder, texts[:100], steps=25, guidance=3.0, seed=0)
    acc = summarise(attribute_hits(load_probe(shipped("probe")), out, chunk))
    return {**_setting(model, folder), "decoder_loss_mean": mean, "distinct_text_fraction": len(set(texts)) / len(texts),
            "foreign_word_fraction": sum(w not in known for w in words) / max(1, len(words)),
            "example_text": texts[0], "probe_accuracy_g3_n100": acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--out", default="benchmarks/ablations")
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown from the JSON in --out")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = pathlib.Path(a.out)
    if a.render:
        saved = json.loads((out / "ablations.json").read_text())
        cmd, rows = saved["command"], saved["results"]
        for f, r in rows.items():
            r["vocab"] = _vocab_label(json.loads((pathlib.Path(f) / "train_config.json").read_text())["config"]["model"])
    else:
        rows = {f: measure(f) for f in a.encoders}
        cmd = "OMP_NUM_THREADS=1 python benchmarks/ablations.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablations.json").write_text(json.dumps({"command": cmd, "results": rows}, indent=2))
    lines = ["# Text-head ablations", "", "Command:", "", f"    {cmd}", "",
             "| encoder | vocabulary | temperature | steps | decoder loss: text | human caption | full caption | empty "
             "| distinct texts | non-world words | probe accuracy (all) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f, r in rows.items():
        m = r["decoder_loss_mean"]
        lines.append(f"| `{f}` | {r['vocab']} | {r['tau']} | {r['steps']} | {m['dediffusion']:.4f} | {m['human_caption']:.4f} "
                     f"| {m['full_caption']:.4f} | {m['empty']:.4f} | {r['distinct_text_fraction']:.2f} "
                     f"| {r['foreign_word_fraction']:.2f} | {r['probe_accuracy_g3_n100']['all']:.3f} |")
    lines += ["", "Example texts (scene 0 of seed 1):", ""] + [f"* `{f}`: {r['example_text']!r}" for f, r in rows.items()]
    (out / "ablations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
