"""Whether the tail's phantom objects are the cells it names (dev, no choice made): how often the first 16
and the last 16 of the shipped encoder's 32 tokens name an empty cell ("top left" etc. as adjacent words),
what the denoising loss says of those names, and what the decoder draws without them.

    OMP_NUM_THREADS=1 python benchmarks/dev_phantoms/tail_cells.py --out benchmarks/dev_phantoms/tail_cells.json

Dev seed 1, scenes 0-299, 32-token texts. Edits use the scene's truth (an oracle, for diagnosis only): in
the tail, each adjacent word pair naming an empty cell is deleted ("delete") or replaced by "a a", which
keeps every other token's position ("fill"). Loss: fixed noise, 32 draws per scene, the same for every
text; the training loss (v-prediction MSE, t uniform in [200, 999]) and the reader's noise-space score
(alpha_bar(t)-weighted, t evenly over [50, 999]); paired bootstrap of edit - text over the scenes whose
tail names an empty cell. Sampling: as ``phantoms.py`` (25 DDIM steps, guidance 1.5).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import torch

from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import CELLS
from dediffusion.eval.probe import targets
from dediffusion.eval.stats import accuracy, paired_bootstrap
from dediffusion.model import diffusion
from dediffusion.model.attribute_cnn import load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.pretrained import resolve

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from phantoms import N, content_errors  # noqa: E402

DRAWS = 32


def empty_cell_names(words: list[str], occupied: set[str], start: int) -> list[int]:
    """Indices i >= start where words[i], words[i+1] name an empty cell (pairs do not overlap)."""
    out, i = [], start
    while i + 1 < len(words):
        pair = f"{words[i]} {words[i + 1]}"
        if pair in CELLS and pair not in occupied:
            out.append(i)
            i += 2
        else:
            i += 1
    return out


def edited(text: str, occupied: set[str], fill: bool) -> str:
    words = text.split()
    for i in reversed(empty_cell_names(words, occupied, 16)):
        words[i:i + 2] = ["a", "a"] if fill else []
    return " ".join(words)


def counts(texts: list[str], chunk_scenes) -> dict:
    out = {}
    for part, lo, hi in (("first 16", 0, 16), ("last 16", 16, 32)):
        pairs = named_empty = 0
        for text, scene in zip(texts, chunk_scenes):
            words = text.split()[lo:hi]
            occupied = {CELLS[o.cell] for o in scene.objects}
            pairs += sum(f"{a} {b}" in CELLS for a, b in zip(words, words[1:]))
            named_empty += len(empty_cell_names(words, occupied, 0))
        out[part] = {"cell names": pairs, "naming an empty cell": named_empty}
    return out


@torch.no_grad()
def losses(decoder, image: torch.Tensor, texts: list[str]) -> np.ndarray:
    """(texts, 2): mean training loss and mean noise-space score of each text on ``image``."""
    gen = torch.Generator().manual_seed(3)
    tv = torch.randint(200, 1000, (DRAWS,), generator=gen)
    noise = torch.randn(decoder.latent_shape(DRAWS), generator=gen)
    te = torch.linspace(50, 999, DRAWS).round().long()
    weight = diffusion.epsilon_weight(decoder.scheduler, te)
    out = []
    for text in texts:
        cond = decoder.text_states([text] * DRAWS)
        x0 = image[None].expand(DRAWS, -1, -1, -1)
        out.append([float(decoder.loss(x0, cond, tv, noise).mean()),
                    float((decoder.loss(x0, cond, te, noise) * weight).mean())])
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, probe = load_model(None), load_probe(resolve(None, "probe"))
    chunk_scenes = scenes(1, 0, N)
    images = images_tensor(chunk_scenes, model.decoder.resolution)
    model.set_inference(inference_tokens=32)
    texts = model.texts(images)
    occupied = [{CELLS[o.cell] for o in s.objects} for s in chunk_scenes]
    out = {"model": "shipped:encoder", "scenes": f"dev seed 1, 0-{N - 1}", "counts": counts(texts, chunk_scenes)}
    hit = [j for j, (t, occ) in enumerate(zip(texts, occupied)) if empty_cell_names(t.split(), occ, 16)]
    per = np.stack([losses(model.decoder, images[j], [texts[j], edited(texts[j], occupied[j], False),
                                                       edited(texts[j], occupied[j], True)]) for j in hit])
    ones = np.ones(len(hit))
    for k, name in enumerate(("training loss", "noise-space score")):
        out[name] = {"text": float(per[:, 0, k].mean()),
                     **{f"{e} - text": paired_bootstrap(accuracy, (per[:, i, k], ones), (per[:, 0, k], ones), n_boot=2000)
                        for i, e in ((1, "delete"), (2, "fill"))},
                     **{f"scenes where {e} is lower": float((per[:, i, k] < per[:, 0, k]).mean())
                        for i, e in ((1, "delete"), (2, "fill"))}}
    out["scenes whose tail names an empty cell"] = len(hit)
    truth = targets(chunk_scenes)["content"]
    for fill in (False, True):
        name = "32 tokens, empty-cell names " + ("replaced by 'a a'" if fill else "deleted")
        out[name] = content_errors(model.decoder, probe, [edited(t, o, fill) for t, o in zip(texts, occupied)],
                                   truth, 1.5)
        print(name, out[name], flush=True)
    print(json.dumps({k: out[k] for k in ("counts", "training loss", "noise-space score")}, indent=1), flush=True)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
