"""Does the guided prediction's loss see the tail's phantom objects? (a check before training on it; no rule:
it chose nothing, it ruled an idea out)

    OMP_NUM_THREADS=1 python benchmarks/dev_guided_loss/guided_loss.py --out benchmarks/dev_guided_loss/guided_loss.json

At 24 and 32 tokens the decoder, sampling with guidance, draws objects in empty cells (RESULTS section 4),
although the training loss (guidance 1) falls with every budget. If the loss of the *guided* prediction
(empty-prompt prediction + w x (text prediction - empty-prompt prediction)) rose from 16 to 32 tokens, training
on it would target the phantoms. Dev scenes 0-255 of seed 1, the shipped encoder's argmax text cut to K
tokens, 4 (t, noise) draws per scene, t in [200, 999], the same for every K and w.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import torch

from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene
from dediffusion.model import diffusion
from dediffusion.model.autoencoder import load_model

BUDGETS, WEIGHTS, DRAWS = (4, 8, 16, 24, 32), (1.0, 1.5, 2.0), 4


@torch.no_grad()
def guided_losses(model, images, t, noise) -> dict:
    dec = model.decoder
    tok = model.forward_tokens(model.forward_encoder(images), None)
    x0 = dec.to_model_space(images)
    empty = dec.text_states([""] * len(images))
    out = {}
    for k in BUDGETS:
        cond = dec.text_states_from_embeds(tok, torch.full((len(images),), k))
        losses = {w: [] for w in WEIGHTS}
        for d in range(DRAWS):
            x_t = dec.scheduler.add_noise(x0, noise[:, d], t[:, d])
            target = diffusion.training_target(dec.scheduler, x0, noise[:, d], t[:, d])
            pc, pu = dec.model_fn(x_t, t[:, d], cond), dec.model_fn(x_t, t[:, d], empty)
            for w in WEIGHTS:
                losses[w].append(((pu + w * (pc - pu) - target) ** 2).mean((1, 2, 3)))
        tt = t.T.reshape(-1)
        for w in WEIGHTS:
            loss = torch.cat(losses[w])
            out[f"K={k} w={w}"] = {"loss": round(loss.mean().item(), 5), "t<600": round(loss[tt < 600].mean().item(), 5),
                                   "t>=600": round(loss[tt >= 600].mean().item(), 5)}
            print(f"K={k} w={w}", out[f"K={k} w={w}"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model).eval()
    images = images_tensor([sample_scene(1, i) for i in range(256)], model.decoder.resolution)
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(200, 1000, (len(images), DRAWS), generator=gen)
    noise = torch.randn(len(images), DRAWS, *model.decoder.latent_shape(1)[1:], generator=gen)
    out = {"scenes": "dev seed 1, scenes 0-255", "model": a.model or "shipped", "losses": guided_losses(model, images, t, noise)}
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
