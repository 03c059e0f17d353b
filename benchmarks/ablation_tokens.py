"""Token-count ablation (paper, Table 4: 5/15/45/75 tokens -> FID 9.19/7.42/6.95/6.43), in miniature.

    OMP_NUM_THREADS=1 python benchmarks/ablation_tokens.py runs/abl_tok6 runs/abl_tok12 shipped:encoder \
        --out benchmarks/ablation_tokens [--fd --inference sample:0.3]

Each encoder folder was trained with ``dediffusion train --out runs/abl_tokN --set
model.encoder.num_tokens=N`` (the default recipe otherwise) against the shipped decoder.
Reports the decoder's loss given each encoder's text (fixed noise, seeds 2, 3, 4246; 256 scenes
each), the fraction of distinct texts over 500 held-out scenes, and probe accuracy of images
decoded from the text (100 scenes of seed 1, DDIM 25, guidance 3). ``--fd`` adds the paper's
metric: Frechet distance (probe features) and probe accuracy of 500 scenes of seed 1 decoded at
guidance 1.5, beside the human-like caption's. ``--inference`` sets every encoder's inference
rule (``argmax`` or ``sample:T``) instead of the one in its config.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

import torch


def _set_inference(model, spec: str | None) -> None:
    import dataclasses

    if spec:
        mode, _, temp = spec.partition(":")
        extra = {"sample_temperature": float(temp)} if temp else {}
        model.head.cfg = dataclasses.replace(model.head.cfg, inference=mode, **extra)


def frechet(model, sources: tuple[str, ...]) -> dict:
    from dediffusion import shipped
    from dediffusion.eval.evaluate import EvalConfig, evaluate_sweep
    from dediffusion.model.attribute_cnn import load_probe

    cfg = EvalConfig(seed=1, n=500, guidance=(1.5,), headline=1.5, sources=sources)
    r = evaluate_sweep(model, load_probe(shipped("probe")), cfg, progress=False)
    return {s: {"fd": r["frechet_distance"]["probe"][s], "accuracy": r["accuracy"][s]} for s in sources}


def measure(folder: str, inference: str | None = None, fd: bool = False) -> dict:
    from dediffusion import load_dediffusion, shipped
    from dediffusion.eval.evaluate import caption_losses
    from dediffusion.model.sampling import generate
    from dediffusion.pretrained import resolve
    from dediffusion.data.world.batches import images_tensor, scenes
    from dediffusion.eval.probe import attribute_hits, summarise
    from dediffusion.model.attribute_cnn import load_probe

    model = load_dediffusion(resolve(folder, "encoder"), decoder_folder=shipped("decoder")).eval()
    _set_inference(model, inference)
    losses = [caption_losses(model.decoder, s, 256, model=model) for s in (2, 3, 4246)]
    mean = {k: sum(r[k] for r in losses) / len(losses) for k in losses[0]}
    texts = model.texts(images_tensor(scenes(1, 0, 500), 16))
    chunk = scenes(1, 0, 100)
    out = generate(model.decoder, model.texts(images_tensor(chunk, 16)), steps=25, guidance=3.0, seed=0)
    acc = summarise(attribute_hits(load_probe(shipped("probe")), out, chunk))
    row = {"num_tokens": model.cfg.encoder.num_tokens, "decoder_loss_mean": mean,
           "distinct_text_fraction": len(set(texts)) / len(texts), "probe_accuracy_g3_n100": acc,
           "inference": inference or model.head.cfg.inference}
    if fd:
        row["g1.5_n500"] = frechet(model, ("dediffusion",))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--out", default="benchmarks/ablation_tokens")
    ap.add_argument("--inference", help="argmax or sample:T for every encoder (default: each one's config)")
    ap.add_argument("--fd", action="store_true", help="add Frechet distance at guidance 1.5 (500 scenes)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = {f: measure(f, a.inference, a.fd) for f in a.encoders}
    if a.fd:  # the reference: the human-like caption through the same decoder, same scenes and noise
        from dediffusion import load_dediffusion
        from dediffusion.pretrained import resolve

        rows["human_caption"] = frechet(load_dediffusion(resolve(a.encoders[0], "encoder")).eval(),
                                        ("human_caption",))["human_caption"]
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/ablation_tokens.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    (out / "ablation_tokens.json").write_text(json.dumps({"command": cmd, "results": rows}, indent=2))
    lines = ["# Token-count ablation", "", "Command:", "", f"    {cmd}", "", *table(rows, a.fd)]
    (out / "ablation_tokens.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table(rows: dict, fd: bool) -> list[str]:
    extra = " FD, guidance 1.5 (n 500) | probe accuracy, guidance 1.5 |" if fd else ""
    lines = ["| encoder | tokens | inference | decoder loss: text | human caption | full caption | empty | distinct texts "
             f"| probe accuracy, guidance 3 (n 100) |{extra}",
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if fd else "")]
    for name, r in rows.items():
        if name == "human_caption":
            continue
        m = r["decoder_loss_mean"]
        cells = [name, r["num_tokens"], r["inference"], f"{m['dediffusion']:.4f}", f"{m['human_caption']:.4f}",
                 f"{m['full_caption']:.4f}", f"{m['empty']:.4f}", f"{r['distinct_text_fraction']:.2f}",
                 f"{r['probe_accuracy_g3_n100']['all']:.3f}"]
        if fd:
            cells += [f"{r['g1.5_n500']['dediffusion']['fd']:.0f}", f"{r['g1.5_n500']['dediffusion']['accuracy']:.3f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if fd:
        h = rows["human_caption"]
        lines += ["", f"Human-like caption on the same 500 scenes at guidance 1.5: FD {h['fd']:.0f}, "
                      f"probe accuracy {h['accuracy']:.3f}."]
    return lines


if __name__ == "__main__":
    main()
