"""``dediffusion explain IMAGE``: per-token attribution (``explain.py``) as explain.json and an explain.png grid."""
from __future__ import annotations

import json
import pathlib
import sys

import torch
from PIL import Image, ImageDraw

from dediffusion.model.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS
from dediffusion.cli.common import encoder_flags, err
from dediffusion.data.images import ImageInputError, display_path, load_image, to_pil
from dediffusion.eval.explain import VARIANTS, attribution
from dediffusion.model.attribute_cnn import load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.pretrained import resolve

TILE = 112  # pixels per tile side in explain.png
COLUMNS = 8


def cmd_explain(a) -> int:
    if a.adaptive_length:
        raise ValueError("explain attributes each of the encoder's K tokens; --adaptive-length does not apply "
                         "(choose the length with --tokens)")
    model = load_model(a.model, a.decoder, a.tokens, a.backbone)
    try:
        image = load_image(a.image, model.decoder.resolution)
    except ImageInputError as e:
        err(str(e))
        return 1
    probe = load_probe(resolve(a.probe, "probe")) if a.probe else "auto"
    variants = VARIANTS if a.variant == "all" else (a.variant,)
    result = attribution(model, image, seed=a.seed, guidance=a.guidance, steps=a.steps, probe=probe,
                         variants=variants, batch=a.batch_size)
    out = pathlib.Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    data = {"image": display_path(a.image), **result.to_json(model.decoder.tokenizer)}
    (out / "explain.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    explain_grid(result, data).save(out / "explain.png")
    print(data["text"])
    _print_table(data)
    print(f"wrote {out / 'explain.json'} and {out / 'explain.png'}", file=sys.stderr)
    return 0


def _print_table(data: dict) -> None:
    """One line per token on stderr: position, word, change per variant, probe attributes it changes."""
    for t in data["tokens"]:
        parts = [f"{t['position']:>3} {t['word']:<12}"]
        for v in data["variants"]:
            changes = t[v]["probe_changes"]
            named = "" if changes is None else " [" + ", ".join(c["attribute"] for c in changes) + "]"
            parts.append(f"{v} {t[v]['change']:.3f}{named}")
        print("  ".join(parts), file=sys.stderr)


def _tile(image: torch.Tensor):
    """(3,H,W) in [0,1] -> a TILE x TILE PIL image (nearest when enlarging: pixels stay visible)."""
    im = to_pil(image)
    mode = Image.Resampling.NEAREST if im.width <= TILE else Image.Resampling.BOX
    return im.resize((TILE, TILE), mode)


def heat_colours(heat: torch.Tensor, top: float) -> torch.Tensor:
    """(H,W) >= 0 -> (3,H,W) in [0,1], black -> red -> yellow -> white as heat goes 0 -> ``top``."""
    x = (heat / top).clamp(0, 1) if top > 0 else torch.zeros_like(heat)
    return torch.stack([(3 * x).clamp(0, 1), (3 * x - 1).clamp(0, 1), (3 * x - 2).clamp(0, 1)])


def explain_grid(result, data: dict):
    """Original and reconstruction, then one heat map per token and variant (per distinct word for
    ``remove_word``), labelled "position: word variant"; one colour scale for all."""
    heats = {v: result.heat(v) for v in result.variants}
    top = max(float(h.max()) for h in heats.values()) if result.ids else 0.0
    tiles = [(result.image, "original"), (result.reconstruction, "reconstruction")]
    for v in result.variants:
        what = {"remove": "-", "replace": f"->{data['neutral_word']}", "remove_word": "-all"}[v]
        first = {}  # remove_word: one tile per distinct word (the copies' tiles are the same)
        for i, (h, t) in enumerate(zip(heats[v], data["tokens"])):
            if v != "remove_word" or first.setdefault(t["id"], i) == i:
                tiles.append((heat_colours(h, top), f"{i}: {t['word']} {what}"))
    label = 14
    rows = -(-len(tiles) // COLUMNS)
    canvas = Image.new("RGB", (COLUMNS * (TILE + 4) + 4, rows * (TILE + label + 4) + 4 + label), "white")
    draw = ImageDraw.Draw(canvas)
    for n, (img, text) in enumerate(tiles):
        x, y = 4 + (n % COLUMNS) * (TILE + 4), 4 + (n // COLUMNS) * (TILE + label + 4)
        canvas.paste(_tile(img), (x, y))
        draw.text((x, y + TILE + 1), text[:19], fill="black")
    draw.text((4, canvas.height - label), f"heat: mean |change| per pixel, white = {top:.3f}", fill="black")
    return canvas


def add_parsers(sub) -> None:
    p = sub.add_parser("explain", help="per-token attribution: remove / replace each token, re-decode with the same "
                       "noise; writes explain.json and explain.png")
    p.add_argument("image")
    p.add_argument("-o", "--output", default="out/explain", help="output folder (default: out/explain)")
    encoder_flags(p)
    p.add_argument("--probe", help="attribute probe folder (default: the shipped probe with the built-in world "
                   "decoder, none with any other)")
    p.add_argument("--variant", choices=("remove", "replace", "remove_word", "all"), default="all",
                   help="remove each token, replace it with the neutral word 'a', remove every copy of its word, "
                   "or all three (default)")
    p.add_argument("--guidance", "--cfg", type=float, default=DEFAULT_GUIDANCE, help="classifier-free guidance")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="DDIM sampling steps")
    p.add_argument("--seed", type=int, default=0, help="the starting noise shared by every decode")
    p.add_argument("--batch-size", type=int, default=0, help="texts per decoder call (default 0: all at once)")
    p.set_defaults(func=cmd_explain)
