"""Quality vs seconds per image: encoder, encoder + refinement, optimisation from scratch (issues 4 and 13).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_vs_budget.py --out benchmarks/quality_vs_budget_v4

One run, side by side, on ``--n`` held-out scenes (seed 3), same token count, vocabulary and frozen
decoder for every row: the shipped encoder's text ("encoder"); the encoder's text refined by k
steps of per-image optimisation (``invert --init encoder``, "refine_k", k in ``--refine``); and
``invert`` from random logits after each budget in ``--budgets`` ("invert_k"). For each: seconds
per image to obtain the prompt (encoder at batch 64; optimisation with 16 images in parallel, as
``invert``'s default; refinement includes the encoder's pass), the decoder's loss given the hard
prompt (``invert.prompt_loss``: 8 fixed (t, noise) draws per image, t in [200, 999]; lower is
better), and the probe's all-attribute accuracy on images decoded from it (DDIM 25, guidance 3,
same starting noise). Human-like and full captions are references. Writes quality_vs_budget.json,
.md and .png (quality vs seconds per image, log x) into ``--out``. Cost: ~10 min at the defaults
on one CPU thread; ``--n 8 --refine 3,10 --budgets 10,30`` runs in about a minute.
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

MEASURES = (("decoder_loss", "decoder loss (lower is better)"), ("probe_accuracy", "probe accuracy (all)"))


def _judge(model, probe, images, scenes_, ids) -> dict:
    from dediffusion.model.sampling import generate
    from dediffusion.eval.invert import prompt_loss
    from dediffusion.model.tokenizer import decode_ids
    from dediffusion.eval.probe import attribute_hits, scene_scores, summarise

    ids = [list(r) for r in (ids.tolist() if torch.is_tensor(ids) else ids)]
    texts = [decode_ids(model.decoder.tokenizer, r) for r in ids]
    out = generate(model.decoder, texts, steps=25, guidance=3.0, seed=0)
    hits = attribute_hits(probe, out, scenes_)
    per_scene = scene_scores(hits, False)  # (hits, checks) per scene: pooled over runs, paired intervals
    return {"decoder_loss": float(prompt_loss(model.decoder, images, ids).mean()),
            "probe_accuracy": summarise(hits)["all"],
            "scene_hits": per_scene[0].tolist(), "scene_checks": per_scene[1].tolist()}


def _timed(fn) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _encoded(model, images) -> tuple[torch.Tensor, float]:
    """The encoder's ids for ``images`` at batch 64, and the seconds they took (after a warm-up batch)."""
    model.token_ids(images[:64])
    return _timed(lambda: torch.cat([model.token_ids(images[i : i + 64]) for i in range(0, len(images), 64)]))


def _prompts(model, images, refine: list[int], budgets: list[int]):
    """Yields (row name, steps, ids (n, N), seconds) for the encoder, each refinement and each budget."""
    from dediffusion.eval.invert import InvertConfig, encoder_logits, invert

    allowed, tokens = model.head.allowed_ids, model.cfg.encoder.num_tokens
    yield "encoder", 0, *_encoded(model, images)
    for k in refine:
        cfg = InvertConfig(steps=k, init="encoder")
        ids, s = _timed(lambda: invert(model.decoder, allowed, images, cfg, tokens,
                                       start=encoder_logits(model, images)))  # the encoder's pass is timed too
        yield f"refine_{k}", k, ids, s
    for k in budgets:
        ids, s = _timed(lambda: invert(model.decoder, allowed, images, InvertConfig(steps=k), tokens))
        yield f"invert_{k}", k, ids, s


def run(n: int, budgets: list[int], refine: list[int] = (), seed: int = 3, start: int = 0,
        encoders: list[str] = ()) -> dict:
    """Rows for scenes ``start .. start + n - 1`` of ``seed``; ``encoders``: more encoder folders (other training
    runs, same decoder and vocabulary), each an "encoder:<folder>" row."""
    from dediffusion import load_dediffusion, shipped
    from dediffusion.data.world.batches import images_tensor, scenes
    from dediffusion.model.attribute_cnn import load_probe
    from dediffusion.data.world.scenes import full_caption, human_caption

    model, probe = load_dediffusion(shipped("encoder")).eval(), load_probe(shipped("probe"))
    sc = scenes(seed, start, n)
    images = images_tensor(sc, model.decoder.resolution)
    rows = {}
    for name, steps, ids, seconds in _prompts(model, images, list(refine), budgets):
        rows[name] = {**({"steps": steps} if steps else {}), "s_per_image": seconds / n,
                      **_judge(model, probe, images, sc, ids)}
        print(name, rows[name], file=sys.stderr, flush=True)
    for folder in encoders:
        other = load_dediffusion(folder).eval()
        ids, seconds = _encoded(other, images)
        rows[f"encoder:{folder}"] = {"s_per_image": seconds / n, **_judge(other, probe, images, sc, ids)}
    for name, fn in (("human_caption", human_caption), ("full_caption", full_caption)):
        rows[name] = _judge(model, probe, images, sc, model.decoder.tokenize([fn(s) for s in sc]))
    return rows


def _cheapest(rows: dict, key: str, better, target: float, prefix: str = "invert_") -> dict | None:
    matched = [r for k, r in rows.items() if k.startswith(prefix) and better(r[key], target)]
    return min(matched, key=lambda r: r["steps"]) if matched else None


def _better(key: str):
    return (lambda r, e: r <= e) if key == "decoder_loss" else (lambda r, e: r >= e)


def _verdict(rows: dict) -> str:
    """The encoder's speed-up over the cheapest optimisation budget that matches it, by each quality measure."""
    enc = rows["encoder"]
    out = []
    for key, label in (("decoder_loss", "decoder loss at or below"), ("probe_accuracy", "probe accuracy at or above")):
        r = _cheapest(rows, key, _better(key), enc[key])
        if r is None:
            out.append(f"No optimisation budget tried reaches the encoder's {key.replace('_', ' ')}.")
            continue
        out.append(f"Cheapest optimisation budget with {label} the encoder's: {r['steps']} steps "
                   f"({r[key]:.4f} vs {enc[key]:.4f}), {r['s_per_image']:.3f} s/image vs {enc['s_per_image']:.5f} s/image: "
                   f"the encoder is **{r['s_per_image'] / enc['s_per_image']:,.0f}x** faster at comparable quality.")
    return "\n\n".join(out)


def _refine_verdict(rows: dict) -> str:
    """Per refinement budget: its gain over the encoder, and the cheapest optimisation from scratch as good."""
    enc, out = rows["encoder"], []
    for name, r in ((k, r) for k, r in rows.items() if k.startswith("refine_")):
        parts = []
        for key, _ in MEASURES:
            m = _cheapest(rows, key, _better(key), r[key])
            scratch = (f"from scratch first at {m['steps']} steps ({m['s_per_image']:.3f} s/image)" if m
                       else "no budget from scratch tried reaches it")
            parts.append(f"{key.replace('_', ' ')} {enc[key]:.4f} -> {r[key]:.4f} ({scratch})")
        out.append(f"Encoder + {r['steps']} steps ({r['s_per_image']:.3f} s/image): " + "; ".join(parts) + ".")
    return "\n\n".join(out)


def markdown(rows: dict, command: str) -> str:
    lines = ["# Quality vs seconds per image: encoder, encoder + refinement, optimisation from scratch", "",
             "Command:", "", f"    {command}", "",
             f"Machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
             f"{platform.platform()}. One run; all rows measured side by side.", "",
             "| prompt | steps | seconds per image | " + " | ".join(label for _, label in MEASURES) + " |",
             "|---|---|---|---|---|"]
    for k, r in rows.items():
        s = f"{r['s_per_image']:.5f}" if "s_per_image" in r else "-"
        lines.append(f"| {k} | {r.get('steps', '-')} | {s} | {r['decoder_loss']:.4f} | {r['probe_accuracy']:.3f} |")
    return "\n".join(lines + ["", _verdict(rows), "", _refine_verdict(rows), ""])


def plot(rows: dict, path: pathlib.Path) -> None:
    """Each quality measure vs seconds per image (log x); captions as horizontal references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, label) in zip(axes, MEASURES):
        for prefix, style in (("refine_", "o-"), ("invert_", "s--")):
            pts = sorted((r["s_per_image"], r[key], r["steps"]) for k, r in rows.items() if k.startswith(prefix))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                        label="encoder + k steps" if prefix == "refine_" else "from scratch, k steps")
                for x, y, k in pts:
                    ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.plot(rows["encoder"]["s_per_image"], rows["encoder"][key], "k*", markersize=12, label="encoder")
        for name, ls in (("human_caption", ":"), ("full_caption", "-.")):
            if name in rows:
                ax.axhline(rows[name][key], color="gray", ls=ls, label=name.replace("_", " "))
        ax.set(xscale="log", xlabel="seconds per image", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/quality_vs_budget")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--start", type=int, default=0, help="first scene index: disjoint parts run side by side")
    ap.add_argument("--seed", type=int, default=3, help="scene stream (3: neither split; 7: the test split)")
    ap.add_argument("--encoders", default="", help="more encoder folders (comma-separated), one row each")
    ap.add_argument("--refine", type=_ints, default=[10, 30, 100], help="refinement steps from the encoder's text")
    ap.add_argument("--budgets", type=_ints, default=[30, 100, 300], help="optimisation steps from random logits")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the Markdown, verdict and plot from the JSON in --out")
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = pathlib.Path(a.out)
    if a.render:
        saved = json.loads((out / "quality_vs_budget.json").read_text())
        rows, command = saved["rows"], saved["command"]
    else:
        rows = run(a.n, a.budgets, a.refine, seed=a.seed, start=a.start, encoders=[e for e in a.encoders.split(",") if e])
        command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_vs_budget.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    verdict = {"encoder_vs_scratch": _verdict(rows), "refinement": _refine_verdict(rows)}
    (out / "quality_vs_budget.json").write_text(json.dumps({"command": command, "rows": rows, "verdict": verdict}, indent=2))
    (out / "quality_vs_budget.md").write_text(markdown(rows, command))
    plot(rows, out / "quality_vs_budget.png")
    print(markdown(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
